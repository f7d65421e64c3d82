"""Checkpoints: one file holds everything needed to resume (both nets, both optimizers' states,
the dropout RNG states, and how far training got), so one atomic rename makes a save safe.

`start_state` decides where a run starts: at zero, or, for --resume, where its checkpoint says,
refusing a checkpoint saved with other settings.
"""
import json
import os

import h5py

from config import Config, flag
from utils import atomic_path


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


# Settings a resumed run must share with the run it continues (others, like --epochs, may change).
# --mixed-precision too: its LossScaleOptimizers save their state in another layout, which Keras would skip.
RESUME_MUST_MATCH = ("task", "max_epoch_steps", "batch_size", "loss", "l1_weight", "lr", "beta_1", "data", "seed",
                     "val_size", "limit", "gen_filters", "gen_max_filters", "disc_filters", "disc_layers",
                     "hole_min", "hole_max", "direction", "load_size", "crop_size", "no_flip", "mixed_precision")


def start_state(cfg, checkpoint):
    """Where training starts: (epoch, step, history) from `checkpoint` for cfg.resume, else zeros.
    With cfg.resume and no checkpoint yet, the run starts from the beginning (with a note), as
    Keras' BackupAndRestore does. Raises ValueError for a resume with other settings, and for a
    fresh run into a folder that holds another run's checkpoint (unless cfg.overwrite)."""
    progress = read_progress(checkpoint)
    if not cfg.resume:
        if progress and not cfg.overwrite:
            raise ValueError(f"{cfg.out} holds another run's checkpoint (epochs done: {progress['epoch']}); "
                             f"add --resume to continue it, --overwrite to replace it, or choose another --out")
        return 0, 0, {}
    if progress is None:  # killed before its first save: --resume may stand in every command of a job
        print(f"--resume: no checkpoint in {cfg.out} yet; starting the run from the beginning")
        return 0, 0, {}
    saved = {k: progress["config"].get(k, getattr(Config(), k)) for k in RESUME_MUST_MATCH}
    changed = [f"{flag(k)} {saved[k]} -> {getattr(cfg, k)}" for k in RESUME_MUST_MATCH if saved[k] != getattr(cfg, k)]
    if changed:
        raise ValueError(f"--resume needs the settings of the saved run; changed: {', '.join(changed)}")
    return progress["epoch"], progress["step"], progress["history"]
