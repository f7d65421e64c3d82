"""Pix2Pix: image-to-image translation with conditional GANs (Isola et al. 2017),
https://arxiv.org/abs/1611.07004

The lesson's task: a digit with a square hole goes in, the whole digit comes out.

    python pix2pix.py                      # train on MNIST inpainting, outputs in runs/pix2pix
    python pix2pix.py --data facades --direction BtoA --out runs/facades   # your own pairs
    python pix2pix.py --help               # every flag, and the other commands (cli.py)

This file holds the model and its training, in reading order:
    bce_with_logits        the GAN loss of a grid of patch logits against a real/fake label
    apply_loss             the one place where a loss becomes a weight update
    Pix2Pix(keras.Model)   both nets, their two optimizers, train_step for model.fit
    build_model(cfg)       a compiled Pix2Pix with the nets and optimizers a Config describes
    train(cfg)             a whole run: data, model, callbacks, fit, every file written in cfg.out
The nets are built in nets.py (unet, patch_discriminator), the settings live in config.py.
"""
if __name__ == "__main__":  # `python pix2pix.py ...`: the flags are read first, before TensorFlow loads
    import cli
    COMMAND = cli.parse_command()  # --help and usage errors end here; the run is at the end of the file

import collections
import contextlib
import dataclasses
import os
import sys

import keras
import tensorflow as tf

import distribute
from callbacks import (
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
from checkpoint import claim_out_folder, restore_checkpoint, resume_point
from config import LOSSES, RunFiles, is_pair_folder, size_hw
from folder_ds import get_folder_ds
from mnist_ds import IMG_SHAPE, get_ds, load_for_task
from nets import patch_discriminator, unet
from utils import check_images, set_seed, write_json
from visual import HistoryPlot, SampleGrid


def bce_with_logits(label, logits):
    """Mean binary cross-entropy of `logits` against a constant label (1.0 real, 0.0 fake),
    over every patch of every image; the label grid takes the logits' own shape."""
    labels = tf.fill(tf.shape(logits), label)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def apply_loss(optimizer, tape, loss, variables):
    """One step of `optimizer` on `variables` down the gradient of `loss` (float32 scalar: the mean
    over this replica's share of the batch) recorded on `tape`. On one device, in float32, that is
    tape.gradient and apply_gradients; for several replicas and mixed precision (distribute.py)
    the gradient is that of loss / replicas * loss scale, injected at the top of the backward pass:
    - / replicas: optimizer.apply_gradients all-reduces the replicas' gradients with a SUM
      (keras TFOptimizer._all_reduce_sum_gradients), so the sum is the gradient of the mean over
      the global batch. One device: replicas = 1.
    - * loss scale: a LossScaleOptimizer (mixed precision) multiplies by its dynamic scale so that
      float16 gradients do not underflow, and its apply_gradients divides by it again (skipping
      the step if they are not finite: on every replica, or on none, see agree_on_finite).
      Other optimizers' scale_loss returns its argument unchanged."""
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    factor = optimizer.scale_loss(tf.constant(1.0 / replicas, loss.dtype))
    grads = tape.gradient(loss, variables, output_gradients=factor)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        grads = distribute.agree_on_finite(grads)
    optimizer.apply_gradients(zip(grads, variables))


class Pix2Pix(keras.Model):
    """Conditional GAN for paired image translation, trained with `fit` on (src, target) batches.

    src, target: float32 [n, h, w, c] in [-1, 1]. `model(src)` runs the generator. Progress bar
    metrics are epoch means: d_loss, d_real and d_fake (D's mean probability that real and
    generated pairs are real), g_gan_loss, g_l1_loss; validation reports val_l1.
    Defaults are the paper's: nets from unet(img_shape) and patch_discriminator(img_shape), lambda
    100, no weight averaging (config.py says which defaults the command line uses).
    ema (not in the paper): with a decay in (0, 1), `ema_generator` keeps an exponential moving
    average of the generator's weights (update_average); that average is what `output_generator`
    returns: what is validated, shown, saved and used. 0: off, output_generator is the generator.
    loss: one of LOSSES, the paper's ablation (Table 1): "l1" trains G on L1 alone and never
    touches D; "gan" and "cgan" drop the L1 term; "gan" variants need an unconditional D
    (patch_discriminator(..., conditional=False)) that sees the output image only.
    """

    def __init__(self, generator=None, discriminator=None, img_shape=(28, 28, 1), l1_weight=100.0,
                 loss="l1+cgan", ema=0.0, **kwargs):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.conditional, self.adversarial, self.uses_l1 = loss.endswith("cgan"), loss != "l1", "l1" in loss
        self.generator = generator or unet(img_shape)
        self.discriminator = discriminator or patch_discriminator(img_shape, conditional=self.conditional)
        if self.adversarial and (len(self.discriminator.inputs) == 2) != self.conditional:
            raise ValueError(f"loss {loss!r} needs a {'conditional' if self.conditional else 'unconditional'} "
                             f"discriminator (patch_discriminator(..., conditional={self.conditional}))")
        self.loss_name, self.l1_weight = loss, float(l1_weight)
        if not 0 <= ema < 1:
            raise ValueError(f"ema must be a decay in [0, 1) (0: off), got {ema}")
        self.ema, self.ema_generator = float(ema), None
        if ema:  # a copy of the generator with its own variables, starting from the same values
            self.ema_generator = keras.models.clone_model(self.generator)
            self.ema_generator.set_weights(self.generator.get_weights())
        names = ("d_loss", "d_real", "d_fake", "g_gan_loss", "g_l1_loss")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.val_l1_tracker = keras.metrics.Mean(name="l1")
        self.built = True  # both nets are functional models, built already: save_weights works at once

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """Separate Adam optimizers for D and G; default the paper's lr 2e-4, beta_1 0.5.
        Other keyword arguments (jit_compile, run_eagerly, ...) go to keras.Model.compile."""
        kwargs.setdefault("optimizer", None)  # Keras' single optimizer is unused: D and G have their own
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)

    def train_step(self, data):
        """The paper's step, D first, then G against the updated D (section 3.3 and its code):
        1. G draws `fake` from `src`; this one forward pass serves both updates.
        2. D learns to tell real pairs (src, target) from generated ones (src, fake).
        3. G learns to fool the updated D while staying close to `target` (L1)."""
        src, target = data                                     # [n, h, w, c] each, in [-1, 1]
        with tf.GradientTape() as g_tape:                      # 1. G's forward pass
            fake = self.generator(src, training=True)
        d_loss, d_real, d_fake = self.update_discriminator(src, target, fake)  # 2. (not on G's tape)
        with g_tape:                                           # 3. G's losses, on its tape again
            g_gan_loss = bce_with_logits(1.0, self.judge(src, fake)) if self.adversarial else tf.constant(0.0)
            g_l1_loss = tf.reduce_mean(tf.abs(target - fake))
            g_loss = g_gan_loss + (self.l1_weight * g_l1_loss if self.uses_l1 else 0.0)
        apply_loss(self.g_optimizer, g_tape, g_loss, self.generator.trainable_weights)
        if self.ema:
            self.update_average()
        for tracker, value in zip(self.trackers.values(), (d_loss, d_real, d_fake, g_gan_loss, g_l1_loss)):
            tracker.update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def update_discriminator(self, src, target, fake):
        """One step of D: real pairs -> 1, generated pairs -> 0, the loss halved, as in the paper,
        to slow D down relative to G. Returns (d_loss, mean D(real), mean D(fake))."""
        if not self.adversarial:  # the "l1" ablation has no D
            return tf.constant(0.0), tf.constant(0.0), tf.constant(0.0)
        with tf.GradientTape() as tape:
            real_logits = self.judge(src, target)
            fake_logits = self.judge(src, fake)
            d_loss = 0.5 * (bce_with_logits(1.0, real_logits) + bce_with_logits(0.0, fake_logits))
        apply_loss(self.d_optimizer, tape, d_loss, self.discriminator.trainable_weights)
        return d_loss, tf.reduce_mean(tf.sigmoid(real_logits)), tf.reduce_mean(tf.sigmoid(fake_logits))

    def update_average(self):
        """Move ema_generator's weights (BatchNorm's moving statistics too) towards the generator's:
        avg <- d * avg + (1 - d) * w, with d = min(ema, (1 + t) / (10 + t)) after G's t-th step,
        so the first steps' weights, worth forgetting, are forgotten fast."""
        t = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.ema, (1.0 + t) / (10.0 + t))
        averages = self.ema_generator.weights
        values = [decay * avg + (1.0 - decay) * w for avg, w in zip(averages, self.generator.weights)]
        distribute.assign_on_every_replica(averages, values)

    @property
    def output_generator(self):
        """The generator that is validated, shown and saved: the average if ema, else the trained one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def judge(self, src, image):
        """D's patch logits for `image`.
        D judges (input, output) pairs, not outputs alone: this is what makes the GAN conditional.
        The "gan" ablation's unconditional D sees the image alone."""
        return self.discriminator([src, image] if self.conditional else image, training=True)

    def test_step(self, data):
        """Validation: mean |target - G(src)| with G in inference mode (no dropout, BN moving stats)."""
        src, target = data
        fake = self.output_generator(src, training=False)
        self.val_l1_tracker.update_state(tf.reduce_mean(tf.abs(target - fake)))
        return {"l1": self.val_l1_tracker.result()}

    @property
    def metrics(self):
        return [*self.trackers.values(), self.val_l1_tracker]  # reset by fit at each epoch

    def call(self, src, training=False):
        return self.output_generator(src, training=training)

    def fit(self, x=None, y=None, **kwargs):
        """keras.Model.fit, after checking that the pairs fit the nets: x = src and y = target as
        arrays (float [n, h, w, c] in [-1, 1]), or x = a tf.data.Dataset of (src, target) batches."""
        src_shape, target_shape = self.generator.input_shape[1:], self.generator.output_shape[1:]
        if isinstance(x, tf.data.Dataset):
            kwargs.setdefault("shuffle", False)  # a dataset shuffles itself (Keras would warn)
            spec = x.element_spec
            if not (isinstance(spec, tuple) and len(spec) == 2):
                raise ValueError(f"the dataset must yield (src, target) pairs, got elements {spec}")
            for part, want in zip(spec, (src_shape, target_shape)):
                fits = part.shape.rank == 4 and all(a in (None, b) for a, b in zip(part.shape[1:], want))
                if not part.dtype.is_floating or not fits:  # unknown sizes (None) are let through
                    raise ValueError(f"the dataset yields {part.dtype.name} {part.shape} but the nets "
                                     f"take float batches [n, {', '.join(map(str, want))}]")
        elif x is not None:
            x, y = check_images(x, "src", src_shape), check_images(y, "target", target_shape)
        return super().fit(x, y, **kwargs)


def build_model(cfg, img_shape=(28, 28, 1), target_channels=None):
    """A compiled Pix2Pix with the nets and optimizers that `cfg` (a Config) describes, for inputs
    [n, *img_shape] and targets with target_channels (default: the input's). Under a
    strategy.scope() it is adapted to the replicas (distribute.adapt_to_strategy); under the
    mixed_float16 policy (distribute.precision_policy("fp16")) both optimizers get loss scaling."""
    model = Pix2Pix(generator=unet(img_shape, target_channels, filters=cfg.gen_filters,
                                   max_filters=cfg.gen_max_filters,
                                   keep_known=cfg.task == "inpaint" and not cfg.no_paste),
                    discriminator=patch_discriminator(img_shape, target_channels, filters=cfg.disc_filters,
                                                      n_layers=cfg.disc_layers or None,
                                                      max_filters=cfg.disc_max_filters,
                                                      conditional=cfg.loss.endswith("cgan")),
                    l1_weight=cfg.l1_weight, loss=cfg.loss, ema=cfg.ema)
    distribute.adapt_to_strategy(model)
    optimizers = [distribute.with_loss_scaling(keras.optimizers.Adam(cfg.lr, beta_1=cfg.beta_1)) for _ in ("d", "g")]
    model.compile(d_optimizer=optimizers[0], g_optimizer=optimizers[1], jit_compile=cfg.jit)
    model.d_optimizer.build(model.discriminator.trainable_variables)  # now, under the caller's strategy
    model.g_optimizer.build(model.generator.trainable_variables)      # scope, not lazily inside a step
    return model


# ---------------------------------------------------------------------------------------------
# A whole training run
# ---------------------------------------------------------------------------------------------

RunData = collections.namedtuple("RunData", "train val steps img_shape target_channels")


def train(cfg, callbacks=()):
    """Train on cfg.data: a folder of image pairs (cfg.task None), or an MNIST task (cfg.task),
    writing every output into cfg.out (config.RunFiles); with cfg.resume, continue the run saved
    there. Extra Keras `callbacks` run after the library's. Returns the trained Pix2Pix model and
    the per-epoch history ({name: [value per epoch]}); the model is None if the run had finished.
    Under --strategy multiworker only worker 0 writes; the others only read a checkpoint to resume."""
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
    if cfg.task is None or is_pair_folder(cfg.data):  # a folder of image pairs, or with a task of photos
        train_ds, val_ds, steps, (src_channels, target_channels) = get_folder_ds(
            cfg.data, cfg.batch_size, cfg.val_size, cfg.direction, cfg.crop_size, cfg.load_size,
            flip=not cfg.no_flip, limit=cfg.limit, task=cfg.task, hole_sizes=(cfg.hole_min, cfg.hole_max), **stream)
        return RunData(train_ds, val_ds, steps, (*size_hw(cfg.crop_size), src_channels), target_channels)
    images, _ = load_for_task(cfg.task, cfg.data, verbose=verbose)
    train_ds, val_ds, steps = get_ds(cfg.batch_size, images=images, val_size=cfg.val_size, limit=cfg.limit,
                                     hole_sizes=(cfg.hole_min, cfg.hole_max), task=cfg.task, **stream)
    return RunData(train_ds, val_ds, steps, IMG_SHAPE, 1)


def build_or_restore(cfg, data, strategy, checkpoint):
    """build_model for the run's data, with its variables on every replica of `strategy`; with
    a `checkpoint` path (a resumed run), every weight, optimizer state and dropout RNG state restored
    from it."""
    with strategy.scope(), distribute.precision_policy(cfg.precision):
        model = build_model(cfg, data.img_shape, data.target_channels)
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
        return [*guard, HistoryPlot(None, None, history), StopOnSignal(None, step_offset=step)]
    clock = [TimeEstimate()] if cfg.verbose else []
    board = [keras.callbacks.TensorBoard(files.tensorboard, write_graph=False)] if cfg.tensorboard else []
    src, target = next(iter(data.val))  # fixed validation inputs for the sample grids
    saver = Checkpoint(files.checkpoint, history, dataclasses.asdict(cfg), cfg.save_every, step_offset=step,
                       previous=files.previous_checkpoint)
    grids = SampleGrid(src[:8], target[:8], files.samples, gif_path=files.gif,
                       log_dir=files.tensorboard if cfg.tensorboard else None)
    return [*guard, grids, HistoryPlot(files.losses, files.history, history), SaveGenerator(files.generator),
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


if __name__ == "__main__":
    sys.exit(cli.run(COMMAND, train=train))
