"""Small helpers shared by the scripts: seeding, atomic saving, checkpoints and their callbacks.

Every file is written to a temporary name in the same folder and renamed into place, so a run
killed in the middle of a save leaves the previous file whole.
"""
import contextlib
import glob
import json
import math
import os
import tempfile

import h5py
import keras
import numpy as np


def set_seed(seed):
    """Seed Python, NumPy and TensorFlow (keras.utils.set_random_seed) for repeatable runs."""
    keras.utils.set_random_seed(int(seed))


PARTIAL = ".partial"  # marks temporary files; a process killed mid-save leaves one behind


def remove_partial_files(folder):
    """Delete the temporary files that saves killed half-way left in `folder` and its sub-folders."""
    for path in glob.glob(os.path.join(glob.escape(folder), "**", f".*{PARTIAL}*"), recursive=True):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix); on success rename it to `path`.

    If the body raises, the temporary file is removed and `path` keeps its old content.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    # Keep the full suffix (".weights.h5", ".keras"): Keras checks it when saving.
    suffix = name[name.index("."):] if "." in name else ""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f"{PARTIAL}{suffix}", dir=folder)
    os.close(fd)
    os.remove(tmp)  # writers such as h5py want to create the file themselves
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(obj, path):
    """Write `obj` as indented JSON to `path`, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2)


def save_model(model, path):
    """model.save(path) through a temporary file (path ends in .keras)."""
    with atomic_path(path) as tmp:
        model.save(tmp)


class SaveGenerator(keras.callbacks.Callback):
    """After every epoch, save the generator alone into `path` (a .keras file), atomically."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        save_model(self.model.generator, self.path)


# ---------------------------------------------------------------------------------------------
# Checkpoints: one file holds everything needed to resume, so one rename makes a save atomic.
# ---------------------------------------------------------------------------------------------

def seed_generators(model):
    """{layer path: keras SeedGenerator} of the layers that draw random numbers (Dropout).
    Their states are no weights, so checkpoints store them separately."""
    return {f"{net.name}/{layer.name}": layer.seed_generator
            for net in (model.generator, model.discriminator) for layer in net.layers
            if hasattr(layer, "seed_generator")}


def save_checkpoint(model, path, progress):
    """Save all weights of `model` (both nets and both optimizers' states), the dropout RNG
    states and `progress` (a JSON-able dict: epoch, step, history, config) in one .weights.h5."""
    rng = {name: [int(v) for v in gen.state.numpy()] for name, gen in seed_generators(model).items()}
    with atomic_path(path) as tmp:
        model.save_weights(tmp)
        with h5py.File(tmp, "a") as f:
            f.attrs["pix2pix_progress"] = json.dumps({**progress, "rng": rng})


def read_progress(path):
    """The progress dict stored by save_checkpoint in `path`, or None if `path` does not exist."""
    if not os.path.exists(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            return json.loads(f.attrs["pix2pix_progress"])
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: not a pix2pix checkpoint or unreadable ({e})") from e


def restore_checkpoint(model, path):
    """Load a checkpoint written by save_checkpoint into a compiled Pix2Pix `model`."""
    # Optimizers create their slots lazily; build them so their saved state has somewhere to go.
    for optimizer, net in ((model.d_optimizer, model.discriminator), (model.g_optimizer, model.generator)):
        if not optimizer.built:  # LossScaleOptimizer.build, unlike Adam's, is not a no-op when built
            optimizer.build(net.trainable_variables)
    try:
        model.load_weights(path)
    except ValueError as e:
        raise ValueError(f"{path} does not fit this model (were the nets' sizes changed?): {e}") from e
    saved_rng = read_progress(path).get("rng", {})
    for name, gen in seed_generators(model).items():
        if name in saved_rng:
            gen.state.assign(saved_rng[name])


class StepCallback(keras.callbacks.Callback):
    """Knows the epoch and the step within it. Set `step_offset` when a fit call starts in the
    middle of an epoch (a resumed run): Keras then numbers that epoch's batches from 0."""

    def __init__(self):
        super().__init__()
        self.epoch, self.step_offset = 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.step_offset = 0

    def step(self, batch):
        """Steps done in the current epoch once `batch` (Keras' index in this fit call) is done."""
        return self.step_offset + batch + 1


class Checkpoint(StepCallback):
    """Save a checkpoint to `path` after every epoch, and every `every_steps` steps within one.

    progress = {"epoch": epochs done, "step": steps done in the next epoch, "history": the
    per-epoch logs so far (a dict shared with HistoryPlot), "config": `config`}.
    """

    def __init__(self, path, history, config, every_steps=0):
        super().__init__()
        self.path, self.history, self.config, self.every_steps = path, history, config, every_steps

    def on_train_batch_end(self, batch, logs=None):
        step = self.step(batch)
        last = batch + 1 == self.params["steps"]  # the epoch's end is saved by on_epoch_end
        if self.every_steps and step % self.every_steps == 0 and not last:
            self.save(self.epoch, step)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.save(epoch + 1, 0)

    def save(self, epoch, step):
        save_checkpoint(self.model, self.path, {"epoch": epoch, "step": step, "history": self.history,
                                                "config": self.config})


class StopOnNonFinite(StepCallback):
    """Stop training at once, with an error naming the step, when a loss turns NaN or infinite.

    It raises (FloatingPointError) instead of setting stop_training, so no epoch-end callback runs
    and no checkpoint is written with the broken weights: the last good one stays."""

    def __init__(self, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch

    def on_train_batch_end(self, batch, logs=None):
        bad = {k: float(v) for k, v in (logs or {}).items() if not math.isfinite(float(v))}
        if bad:
            raise FloatingPointError(
                f"non-finite loss at epoch {self.epoch + 1}, step {self.step(batch)}/{self.steps_per_epoch} "
                f"({', '.join(f'{k}={v}' for k, v in bad.items())}); training stopped, the last good "
                f"checkpoint is kept. Try a lower --lr, or check the data for NaN or inf values")


class TrainingHealth(keras.callbacks.Callback):
    """Warn once, with a hint, when a GAN run goes wrong in one of the two classic ways:
    - D wins outright: d_loss below `d_floor` for `patience` epochs in a row while g_gan_loss climbs
      (G gets no useful gradient from D any more);
    - G stops depending on its input: on the fixed inputs `src` (float32 [n, h, w, c] in [-1, 1]),
      the outputs differ from one input to the next by less than `spread_floor` of how much the
      inputs differ (collapse: one answer for everything). Judged only after `min_steps` training
      steps: a fresh generator gives nearly the same grey for every input."""

    def __init__(self, src, patience=3, d_floor=0.05, spread_floor=0.05, min_steps=200):
        super().__init__()
        self.src, self.patience, self.d_floor, self.spread_floor = src, patience, d_floor, spread_floor
        self.min_steps, self.steps = min_steps, 0
        self.epochs, self.warned = [], set()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def warn(self, kind, message):
        if kind not in self.warned:
            self.warned.add(kind)
            print(f"\nWarning: {message}")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        d_loss, g_gan = float(logs.get("d_loss", 0.0)), float(logs.get("g_gan_loss", 0.0))
        if d_loss or g_gan:  # the "l1" loss has no D: nothing to judge
            self.epochs.append((d_loss, g_gan))
        recent = self.epochs[-self.patience:]
        if (len(recent) == self.patience and all(d < self.d_floor for d, _ in recent)
                and recent[-1][1] > recent[0][1]):
            self.warn("d_wins", f"the discriminator has won outright for {self.patience} epochs "
                                f"(d_loss < {self.d_floor}, G's GAN loss climbing to {recent[-1][1]:.2f}). "
                                f"Try a lower --lr, a larger --lambda, or fewer --disc-layers.")
        if self.steps < self.min_steps:
            return
        fake = np.asarray(self.model.generator(self.src, training=False))
        spread = lambda images: float(np.mean(np.std(images, axis=0)))  # noqa: E731  across the inputs
        if spread(fake) < self.spread_floor * spread(self.src):
            self.warn("collapse", f"the generator's outputs barely depend on its input any more (spread "
                                  f"{spread(fake):.4f} against {spread(self.src):.4f} for the inputs). "
                                  f"Try a larger --lambda, or restart with another --seed.")
