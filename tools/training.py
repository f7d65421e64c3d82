"""A whole training run, as `python pix2pix.py` makes it: the data, the model (Pix2Pix, or on
several replicas ReplicatedPix2Pix), Keras callbacks that write every output into cfg.out,
checkpoints, resuming where a run stopped, signals, one run per folder. pix2pix.py's Pix2Pix
and build_model are the lesson; this module is the machinery around `model.fit`.

    train(cfg)            a whole run; returns (model, history)
    open_data(cfg)        the run's pipelines (MNIST task, folder of pairs or of photos)
    run_callbacks(...)    the callbacks, in order
"""
import collections
import contextlib
import dataclasses
import os

import keras
import tensorflow as tf

import pix2pix
from config import RunFiles, size_hw
from mnist_ds import IMG_SHAPE, get_mnist_ds, load_for_task
from tools import distribute
from tools.callbacks import (
    Checkpoint,
    LinearDecay,
    SaveBestGenerator,
    SaveGenerator,
    StopOnNonFinite,
    StopOnSignal,
    TimeEstimate,
    TrainingHealth,
    handling_signals,
)
from tools.checkpoint import claim_out_folder, restore_checkpoint, resume_point
from tools.folder_ds import get_folder_ds
from utils import set_seed, write_json
from visual import HistoryRecorder, SampleGrid

RunData = collections.namedtuple("RunData", "train val steps img_shape target_channels")


def train(cfg, callbacks=()):
    """Train on cfg.data: a folder of image pairs (cfg.task None), or an MNIST task (cfg.task),
    writing every output into cfg.out (config.RunFiles); with cfg.resume, continue the run saved
    there. Extra Keras `callbacks` run after the library's. Returns the trained Pix2Pix model and
    the per-epoch history ({name: [value per epoch]}); the model is None if the run had finished.
    Under --strategy multiworker only worker 0 writes; the others only read a checkpoint to resume.
    Settings that cannot work are refused first, in the command line's words (Config.check_run)."""
    cfg.check_run()
    strategy = distribute.make_strategy(cfg.strategy)  # first: TensorFlow must not have started yet
    cfg = cfg.replace(precision=distribute.resolve_precision(cfg.precision))  # saved as it runs: fp32|bf16|fp16
    files, chief = RunFiles(cfg.out), distribute.is_chief(strategy)
    epoch, step, history, checkpoint = resume_point(cfg, files)
    if epoch >= cfg.epochs:
        print(f"{cfg.out}: the run already finished its {epoch} epochs; nothing to do "
              f"(raise --epochs to train longer)")
        return None, history
    set_up(cfg, strategy)
    data = open_data(cfg, epoch, step)  # every file read or checked: bad data fails before any write
    print(f"Plan: {cfg.epochs} epochs of {data.steps} steps = {cfg.epochs * data.steps:,} steps of "
          f"{cfg.batch_size} image{'s' * (cfg.batch_size > 1)}")
    with claim_out_folder(cfg.out, files.lock) if chief else contextlib.nullcontext():  # one run per folder
        print((f"Writing outputs to {os.path.abspath(cfg.out)}" if chief else "This worker writes no outputs, "
               "worker 0 does") + (f" (resuming at epoch {epoch + 1}, step {step})" if epoch or step else ""))
        model = build_or_restore(cfg, data, strategy, checkpoint)
        if chief:
            write_json(dataclasses.asdict(cfg), files.config)
        callbacks = [*run_callbacks(cfg, files, data, history, step, chief), *callbacks]
        fit = dict(validation_data=data.val, verbose=cfg.verbose, callbacks=callbacks)
        with handling_signals(callbacks):  # SIGTERM, Ctrl-C: save at the step and stop
            if step:  # resumed in the middle of an epoch
                epoch, data = finish_epoch(model, cfg, data, epoch, step, fit)
            if epoch < cfg.epochs:
                model.fit(data.train, steps_per_epoch=data.steps, initial_epoch=epoch, epochs=cfg.epochs, **fit)
    return model, history


def set_up(cfg, strategy):
    """Seed everything, turn on op determinism if asked, and check that the batch splits evenly
    across the strategy's replicas (ValueError if not)."""
    set_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    replicas = strategy.num_replicas_in_sync
    if cfg.batch_size % replicas:
        default = " (the default for image folders)" if cfg.batch_size == 1 else ""
        raise ValueError(f"--batch-size {cfg.batch_size}{default} must be a multiple of the {replicas} replicas: "
                         f"each gets an equal share; pass --batch-size {replicas} or more")
    if replicas > 1:
        print(f"--strategy {cfg.strategy}: {replicas} replicas, {cfg.batch_size // replicas} images each per step")


def open_data(cfg, first_epoch=0, skip_steps=0, verbose=True):
    """The run's pipelines as RunData: the endless training stream from (first_epoch, skip_steps),
    the validation batches, steps per epoch, the input shape (h, w, c) and the target's channels.
    Every file is read or checked here, so bad data fails before anything is written."""
    stream = dict(seed=cfg.seed, first_epoch=first_epoch, skip_steps=skip_steps, verbose=verbose,
                  max_epoch_steps=cfg.max_epoch_steps)
    if cfg.task is None and not cfg.data:
        raise ValueError("no --data: Config.paper() trains on a folder of image pairs, give its path "
                         "(or use Config.mnist() for the MNIST tasks)")
    if cfg.kind != "mnist":  # a folder of image pairs, or of photos with a task
        train_ds, val_ds, steps, (src_channels, target_channels) = get_folder_ds(
            cfg.data, cfg.batch_size, cfg.val_size, cfg.direction, cfg.crop_size, cfg.load_size,
            flip=not cfg.no_flip, jitter_resize=cfg.jitter_resize, limit=cfg.limit, task=cfg.task,
            hole_sizes=(cfg.hole_min, cfg.hole_max), **stream)
        return RunData(train_ds, val_ds, steps, (*size_hw(cfg.crop_size), src_channels), target_channels)
    images, _ = load_for_task(cfg.task, cfg.data, verbose=verbose)
    train_ds, val_ds, steps = get_mnist_ds(cfg.batch_size, images=images, val_size=cfg.val_size, limit=cfg.limit,
                                           hole_sizes=(cfg.hole_min, cfg.hole_max), task=cfg.task, **stream)
    return RunData(train_ds, val_ds, steps, IMG_SHAPE, 1)


def build_or_restore(cfg, data, strategy, checkpoint):
    """build_model for the run's data, with its variables on every replica of `strategy` (a
    ReplicatedPix2Pix for several replicas or float16, else the lesson's Pix2Pix); with a
    `checkpoint` path (a resumed run), every weight, optimizer state and dropout RNG state
    restored from it."""
    replicated = cfg.strategy != "none" or cfg.precision == "fp16"
    with strategy.scope(), distribute.precision_policy(cfg.precision):
        model_class = distribute.ReplicatedPix2Pix if replicated else pix2pix.Pix2Pix
        model = pix2pix.build_model(cfg, data.img_shape, data.target_channels, model_class=model_class)
        if checkpoint:
            restore_checkpoint(model, checkpoint)
    if cfg.summary:
        model.generator.summary()
        model.discriminator.summary()
    return model


def run_callbacks(cfg, files, data, history, step, chief):
    """The library's callbacks, in order: the learning-rate schedule (--lr-decay-epochs) and the NaN
    guard first (so nothing broken is saved), then sample grids, curves, the generator files (the
    last and the best by validation L1), the checkpoint, the health warnings, the time estimate and
    TensorBoard (--tensorboard). `history`
    (a resumed run's so far) grows in place; `step` is where the first epoch starts. Workers other
    than the chief only guard, keep the history in memory and stop with it on a signal: they write nothing."""
    guard = [StopOnNonFinite(data.steps, step_offset=step)]  # every worker: they all stop at one step
    if cfg.lr_decay_epochs:
        guard.insert(0, LinearDecay(cfg.lr, cfg.epochs, cfg.lr_decay_epochs))
    if not chief:  # the others agree with it on when to stop (distribute.agree_on_signal)
        return [*guard, HistoryRecorder(None, None, history), StopOnSignal(None, step_offset=step)]
    clock = [TimeEstimate()] if cfg.verbose else []
    board = [keras.callbacks.TensorBoard(files.tensorboard, write_graph=False)] if cfg.tensorboard else []
    src, target = next(iter(data.val))  # fixed validation inputs for the sample grids
    saver = Checkpoint(files.checkpoint, history, dataclasses.asdict(cfg), cfg.save_every, step_offset=step,
                       previous=files.previous_checkpoint)
    grids = SampleGrid(src[:8], target[:8], files.samples, gif_path=files.gif,
                       log_dir=files.tensorboard if cfg.tensorboard else None)
    return [*guard, grids, HistoryRecorder(files.losses, files.history, history), SaveGenerator(files.generator),
            SaveBestGenerator(files.best_generator, history, files.generator), saver,
            StopOnSignal(saver, step_offset=step), TrainingHealth(src), *clock, *board]


def finish_epoch(model, cfg, data, epoch, step, fit):
    """A run resumed in the middle of an epoch first runs that epoch's remaining steps (their logs
    average the steps run now). Returns the next epoch's index, and `data` with the training stream
    from that epoch's start (fit restarts a dataset at every call)."""
    stop = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: setattr(model, "stop_training", True))
    model.fit(data.train, steps_per_epoch=data.steps - step, initial_epoch=epoch, epochs=cfg.epochs,  # "Epoch e/N"
              **{**fit, "callbacks": [*fit["callbacks"], stop]})
    return epoch + 1, data._replace(train=open_data(cfg, epoch + 1, verbose=False).train)


