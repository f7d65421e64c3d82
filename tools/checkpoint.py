"""What lets a run stop and continue safely. Checkpoints: one file holds everything needed to
resume (both nets, both optimizers' states, the dropout RNG states, and how far training got), so
one atomic rename makes a save safe; the one before is kept. `resume_point` and `start_state`
decide where a run starts: at zero, or, for --resume, where its checkpoint says, refusing a
checkpoint saved with other settings. `claim_out_folder` keeps two runs out of one folder.
"""
import contextlib
import dataclasses
import datetime
import json
import os
import socket

import h5py
import numpy as np

from config import Config, flag
from utils import atomic_path, ensure_room, remove_partial_files


def seed_generators(model):
    """{layer path: keras SeedGenerator} of the layers that draw random numbers (Dropout).
    Their states are no weights, so checkpoints store them separately."""
    return {f"{net.name}/{layer.name}": layer.seed_generator
            for net in (model.generator, model.discriminator) for layer in net.layers
            if hasattr(layer, "seed_generator")}


def save_checkpoint(model, path, progress, previous=None):
    """Save all weights of `model` (both nets and both optimizers' states), the dropout RNG
    states and `progress` (a JSON-able dict: epoch, step, history, config) in one .weights.h5.
    previous: where the checkpoint it replaces is kept (RunFiles.previous_checkpoint)."""
    rng = {name: [int(v) for v in gen.state.numpy()] for name, gen in seed_generators(model).items()}
    ensure_room(path, checkpoint_bytes(model, path))  # HDF5 can crash on a full disk: check first
    with atomic_path(path, keep_previous=previous) as tmp:
        model.save_weights(tmp)
        with h5py.File(tmp, "a") as f:
            f.attrs["pix2pix_progress"] = json.dumps({**progress, "rng": rng})


def checkpoint_bytes(model, path):
    """About how many bytes a checkpoint of `model` takes: the last one's size, or its variables'
    (both nets' weights, and Adam's two slots for every trainable one) plus a little for HDF5."""
    if os.path.exists(path):
        return os.path.getsize(path)
    nbytes = lambda variables: sum(int(np.prod(v.shape)) * 4 for v in variables)  # noqa: E731  float32
    nets = (model.generator, model.discriminator)
    average = nbytes(model.ema_generator.weights) if model.ema_generator is not None else 0
    return sum(nbytes(net.weights) + 2 * nbytes(net.trainable_weights) for net in nets) + average + 2 ** 20


def read_progress(path):
    """The progress dict stored by save_checkpoint in `path`, or None if `path` does not exist."""
    if not os.path.exists(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            return json.loads(f.attrs["pix2pix_progress"])
    except (OSError, KeyError, ValueError) as e:
        size = os.path.getsize(path)
        raise UnreadableCheckpoint(f"{path} ({size:,} bytes) is not a readable pix2pix checkpoint "
                                   f"({type(e).__name__}: {str(e)[:120]})") from e


class UnreadableCheckpoint(ValueError):
    """A checkpoint file that cannot be read: truncated, empty, or not a checkpoint."""


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
# --precision too: fp16's LossScaleOptimizers save their state in another layout, which Keras would skip.
RESUME_MUST_MATCH = ("task", "max_epoch_steps", "batch_size", "loss", "l1_weight", "lr", "beta_1", "data", "seed",
                     "val_size", "limit", "gen_filters", "gen_max_filters", "disc_filters", "disc_layers",
                     "disc_max_filters", "hole_min", "hole_max", "direction", "load_size", "crop_size", "no_flip",
                     "precision", "no_paste", "ema")

# What a checkpoint saved before a setting existed ran with, where that is not today's default.
SAVED_BEFORE_THE_FLAG = {"precision": "fp32"}


def resume_point(cfg, files):
    """start_state for the run in `files` (config.RunFiles): (epoch, step, history, the checkpoint
    to restore or None). With cfg.resume, a checkpoint that cannot be read (truncated, empty, not
    a checkpoint) gives way to the previous one, with a note."""
    try:
        epoch, step, history = start_state(cfg, files.checkpoint)
        return epoch, step, history, files.checkpoint if epoch or step else None
    except UnreadableCheckpoint as e:
        if not (cfg.resume and os.path.exists(files.previous_checkpoint)):
            raise
        print(f"note: {e}; resuming from the previous checkpoint, {files.previous_checkpoint}")
        epoch, step, history = start_state(cfg, files.previous_checkpoint)
        return epoch, step, history, files.previous_checkpoint


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
    defaults = {**dataclasses.asdict(Config()), **SAVED_BEFORE_THE_FLAG}  # for keys older checkpoints lack
    saved = {k: progress["config"].get(k, defaults[k]) for k in RESUME_MUST_MATCH}
    changed = [f"{flag(k)} {saved[k]} -> {getattr(cfg, k)}" for k in RESUME_MUST_MATCH if saved[k] != getattr(cfg, k)]
    if changed:
        raise ValueError(f"--resume needs the settings of the saved run; changed: {', '.join(changed)}")
    return progress["epoch"], progress["step"], progress["history"]


@contextlib.contextmanager
def claim_out_folder(folder, lock_path):
    """Inside the block, this process alone writes into `folder` (made if missing): it holds
    `lock_path`, a file naming its process, host and start time. A lock held by a live process
    is refused (RuntimeError naming it); one left by a process that no longer runs is taken over,
    with a note. Partial files of saves killed half-way are removed once the lock is held."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot write into --out {folder}: {e.strerror}") from e
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": datetime.datetime.now().isoformat(timespec="seconds")}
    while True:
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            holder = read_lock(lock_path)
            if holder and holder_is_alive(holder):
                raise RuntimeError(f"{folder} is in use by another run: process {holder['pid']} on "
                                   f"{holder['host']}, started {holder['started']}; wait for it to end, or "
                                   f"choose another --out (if no run uses it, delete {lock_path})") from None
            left_by = f"process {holder['pid']}, started {holder['started']}" if holder else "unreadable"
            print(f"note: taking over {lock_path}, left by a run that no longer runs ({left_by})")
            os.remove(lock_path)
    with os.fdopen(fd, "w") as f:
        json.dump(me, f)
    remove_partial_files(folder)
    try:
        yield
    finally:
        if (read_lock(lock_path) or {}).get("pid") == me["pid"]:
            os.remove(lock_path)


def read_lock(path):
    """The {pid, host, started} in a lock file, or None if it is gone or unreadable."""
    try:
        with open(path) as f:
            holder = json.load(f)
        return holder if isinstance(holder, dict) and {"pid", "host", "started"} <= set(holder) else None
    except (OSError, ValueError):
        return None


def holder_is_alive(holder):
    """True if the lock's process runs (on this host; on another host, assume it does). A process
    with its id that started after the lock was written is another one (ids are reused, as after
    a reboot or a container's restart): the holder is gone."""
    if holder["host"] != socket.gethostname():
        return True
    try:
        pid = int(holder["pid"])
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError, TypeError):  # gone, or no process id at all
        return False
    except PermissionError:  # it runs, as another user
        pass
    started = process_start_time(pid)
    try:
        locked = datetime.datetime.fromisoformat(str(holder["started"])).timestamp()
    except ValueError:
        return True
    return started is None or started <= locked + 2  # the lock is written just after its process starts


def process_start_time(pid):
    """When process `pid` started (seconds since the epoch), from Linux's /proc; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, after the command's name
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
