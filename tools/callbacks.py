"""The library's Keras callbacks for a training run (the pictures' callbacks are in visual.py):
checkpoints, the generator file, the NaN guard, and warnings when a GAN run goes wrong."""
import contextlib
import math
import os
import shutil
import signal
import threading
import time

import keras
import numpy as np

from tools import distribute
from tools.checkpoint import save_checkpoint
from utils import atomic_path, in_float32, save_model


class SaveGenerator(keras.callbacks.Callback):
    """After every epoch, save the generator alone into `path` (a .keras file), atomically. A net
    trained in 16 bits is saved as its float32 copy (utils.in_float32), built once and given the
    epoch's weights each time: building it took longer than saving it."""

    def __init__(self, path):
        super().__init__()
        self.path, self.copy = path, None

    def on_epoch_end(self, epoch, logs=None):
        generator = self.model.output_generator
        if self.copy is None:
            self.copy = in_float32(generator)  # the generator itself if it computes in float32
        elif self.copy is not generator:
            self.copy.set_weights(generator.get_weights())
        save_model(self.copy, self.path)


class SaveBestGenerator(keras.callbacks.Callback):
    """After an epoch whose validation L1 is the lowest of the run so far (`history`, a resumed
    run's included, holds every epoch's logs once HistoryRecorder has run), copy the generator file
    that SaveGenerator has just written (`generator_path`) to `path`: the last epoch's is not
    always the best."""

    def __init__(self, path, history, generator_path):
        super().__init__()
        self.path, self.history, self.generator_path = path, history, generator_path

    def on_epoch_end(self, epoch, logs=None):
        val_l1 = self.history.get("val_l1", [])
        if val_l1 and val_l1[-1] <= min(val_l1):
            with atomic_path(self.path) as tmp:
                shutil.copyfile(self.generator_path, tmp)


class LinearDecay(keras.callbacks.Callback):
    """Both learning rates constant at `lr`, then decaying linearly over the last `decay_epochs` of
    `epochs`: epoch e (0-based) trains at lr * min(1, (epochs - e) / (decay_epochs + 1)), so the
    last epoch runs at lr / (decay_epochs + 1) (the CycleGAN paper's schedule). Set at the start of
    every epoch from its number alone, so a resumed run continues on the same schedule."""

    def __init__(self, lr, epochs, decay_epochs):
        super().__init__()
        self.lr, self.epochs, self.decay_epochs = lr, epochs, decay_epochs

    def rate(self, epoch):
        return self.lr * min(1.0, (self.epochs - epoch) / (self.decay_epochs + 1))

    def on_epoch_begin(self, epoch, logs=None):
        for optimizer in (self.model.d_optimizer, self.model.g_optimizer):
            optimizer.learning_rate = self.rate(epoch)


class StepCallback(keras.callbacks.Callback):
    """Knows the epoch and the step within it. `step_offset`: the steps already done in the first
    epoch when training starts in its middle (a resumed run), since Keras numbers its batches from 0."""

    def __init__(self, step_offset=0):
        super().__init__()
        self.epoch, self.step_offset = 0, step_offset

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
    per-epoch logs so far (a dict shared with HistoryRecorder), "config": `config`}.
    """

    def __init__(self, path, history, config, every_steps=0, step_offset=0, previous=None):
        super().__init__(step_offset)
        self.previous = previous  # where the checkpoint before is kept
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
                                                "config": self.config}, previous=self.previous)


class StopOnNonFinite(StepCallback):
    """Stop training at once, with an error naming the step, when a loss turns NaN or infinite.

    It raises (FloatingPointError) instead of setting stop_training, so no epoch-end callback runs
    and no checkpoint is written with the broken weights: the last good one stays."""

    def __init__(self, steps_per_epoch, step_offset=0):
        super().__init__(step_offset)
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
        fake = np.asarray(self.model.output_generator(self.src, training=False))
        spread = lambda images: float(np.mean(np.std(images, axis=0)))  # noqa: E731  across the inputs
        if spread(fake) < self.spread_floor * spread(self.src):
            self.warn("collapse", f"the generator's outputs barely depend on its input any more (spread "
                                  f"{spread(fake):.4f} against {spread(self.src):.4f} for the inputs). "
                                  f"Try a larger --lambda, or restart with another --seed.")


class TimeEstimate(keras.callbacks.Callback):
    """When the second epoch that a fit call runs begins, print how long the first took and about
    when the remaining epochs will be done, from the rate of its training steps alone: the first
    step (tracing the graph) and the first epoch's one-off costs (compiling validation, the first
    saves) are left out. When the third begins, print a corrected estimate from the whole second
    epoch (validation and saves included) if it differs by more than a fifth. Each epoch has the
    same number of steps."""

    def __init__(self):
        super().__init__()
        self.epochs_seen, self.first_step_done, self.last_step_done = 0, None, None
        self.epoch_began, self.whole_epoch, self.per_epoch = None, None, None

    def on_train_batch_end(self, batch, logs=None):
        self.last_step_done = time.time()
        if self.epochs_seen == 0:
            self.first_step_done = self.first_step_done or self.last_step_done

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_seen += 1
        steps = self.params.get("steps") or 0
        if self.epochs_seen == 1 and steps > 1:
            self.per_epoch = (self.last_step_done - self.first_step_done) * steps / (steps - 1)
        if self.epochs_seen == 2 and self.epoch_began:
            self.whole_epoch = time.time() - self.epoch_began

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_began, left = time.time(), self.params["epochs"] - epoch
        if left < 1:
            return
        if self.epochs_seen == 1 and self.per_epoch:
            print(f"The first epoch's steps took {duration(self.per_epoch)} once compiled; the remaining {left} "
                  f"epoch{'s' * (left > 1)} should take about {self.estimate(left, self.per_epoch)}")
        elif self.epochs_seen == 2 and self.whole_epoch and self.per_epoch and (
                abs(self.whole_epoch - self.per_epoch) > 0.2 * self.per_epoch):
            print(f"The second epoch took {duration(self.whole_epoch)} with validation and saving; the remaining "
                  f"{left} epoch{'s' * (left > 1)} should take about {self.estimate(left, self.whole_epoch)}")

    @staticmethod
    def estimate(left, per_epoch):
        finish = time.strftime("%H:%M", time.localtime(time.time() + left * per_epoch))
        return f"{duration(left * per_epoch)} (done around {finish})"


def duration(seconds):
    """A duration for people: "45 s", "12 min", "3.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class Interrupted(Exception):
    """Training stopped on a signal (SIGTERM, SIGINT) after saving a checkpoint: `epoch` epochs
    and `step` steps of the next one done."""

    def __init__(self, signum, epoch, step):
        super().__init__(f"stopped by {signal.Signals(signum).name} after {epoch} epochs and {step} steps")
        self.signum, self.epoch, self.step = signum, epoch, step


class StopOnSignal(StepCallback):
    """Once `request_stop` has been called (by a signal: see handling_signals), finish the current
    step, save a checkpoint at it with `checkpoint` (a Checkpoint callback, which must run before
    this one; the epoch's last step is saved by its on_epoch_end; None on workers that write
    nothing) and raise Interrupted. A second request exits at once, with status 128 + the signal's
    number. Under --strategy multiworker the workers agree after every step whether any of them
    was signalled (distribute.agree_on_signal), so they all stop at the same step."""

    def __init__(self, checkpoint, step_offset=0):
        super().__init__(step_offset)
        self.checkpoint, self.signum = checkpoint, None

    def request_stop(self, signum, frame=None):
        if self.signum is not None:  # asked twice: no more waiting
            os._exit(128 + signum)
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step, with a checkpoint "
              f"(again to quit at once)", flush=True)

    def agreed_signal(self):
        return distribute.agree_on_signal(self.model.distribute_strategy, self.signum)

    def on_train_batch_end(self, batch, logs=None):
        signum = self.agreed_signal()
        if signum and batch + 1 < self.params["steps"]:
            step = self.step(batch)
            if self.checkpoint:
                self.checkpoint.save(self.epoch, step)
            raise Interrupted(signum, self.epoch, step)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        signum = self.agreed_signal()
        if signum:  # the Checkpoint callback saved (epoch + 1, 0) just before
            raise Interrupted(signum, epoch + 1, 0)


@contextlib.contextmanager
def handling_signals(callbacks):
    """Inside the block, SIGTERM and SIGINT go to the StopOnSignal among `callbacks` (if any; in
    the main thread only, where Python delivers signals); the previous handlers come back after."""
    stopper = next((c for c in callbacks if isinstance(c, StopOnSignal)), None)
    if stopper is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, stopper.request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
