"""Pix2Pix: image-to-image translation with conditional GANs (Isola et al. 2017),
https://arxiv.org/abs/1611.07004

The lesson's task: a digit with a square hole goes in, the whole digit comes out.

    python pix2pix.py                      # train on MNIST inpainting, outputs in runs/pix2pix
    python pix2pix.py --data facades --direction BtoA --out runs/facades   # your own pairs
    python pix2pix.py --help               # every flag, and the other commands

This file holds the model, in reading order:
    bce_with_logits        the GAN loss of a grid of patch logits against a real/fake label
    Pix2Pix(keras.Model)   both nets, their two optimizers, train_step for model.fit
    build_model(cfg)       a compiled Pix2Pix with the nets and optimizers a Config describes
The nets are built in nets.py, the settings live in config.py, the MNIST pairs come from
mnist_ds.py. A whole training run (data, callbacks, checkpoints, resume) is tools/training.py,
which the command line (tools/cli.py) calls; `python pix2pix.py` hands over to it.
"""
if __name__ == "__main__":  # `python pix2pix.py ...`: the flags are read first, before TensorFlow loads
    from tools import cli
    COMMAND = cli.parse_command()  # --help and usage errors end here; the run is at the end of the file

import keras
import tensorflow as tf

from config import LOSSES
from nets import patch_discriminator, unet
from utils import check_images


def bce_with_logits(label, logits):
    """Mean binary cross-entropy of `logits` against a constant label (1.0 real, 0.0 fake),
    over every patch of every image; the label grid takes the logits' own shape."""
    labels = tf.fill(tf.shape(logits), label)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


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
        self.apply_loss(self.g_optimizer, g_tape, g_loss, self.generator.trainable_weights)
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
        self.apply_loss(self.d_optimizer, tape, d_loss, self.discriminator.trainable_weights)
        return d_loss, tf.reduce_mean(tf.sigmoid(real_logits)), tf.reduce_mean(tf.sigmoid(fake_logits))

    def update_average(self):
        """Move ema_generator's weights (BatchNorm's moving statistics too) towards the generator's."""
        for average, value in zip(self.ema_generator.weights, self.averaged_weights()):
            average.assign(value)

    def averaged_weights(self):
        """The average's next values: avg <- d * avg + (1 - d) * w, with d = min(ema, (1 + t) / (10 + t))
        after G's t-th step, so the first steps' weights, worth forgetting, are forgotten fast."""
        t = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.ema, (1.0 + t) / (10.0 + t))
        return [decay * avg + (1.0 - decay) * w for avg, w in zip(self.ema_generator.weights, self.generator.weights)]

    def apply_loss(self, optimizer, tape, loss, variables):
        """One step of `optimizer` on `variables` down the gradient of `loss` recorded on `tape`: the one
        place where a loss becomes a weight update. Several devices and float16 need more, which
        tools/distribute.py's ReplicatedPix2Pix adds by overriding this method."""
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))

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


def build_model(cfg, img_shape=(28, 28, 1), target_channels=None, model_class=Pix2Pix):
    """A compiled Pix2Pix (or `model_class`, a subclass) with the nets and optimizers that `cfg`
    (a Config) describes, for inputs [n, *img_shape] and targets with target_channels (default:
    the input's). Both optimizers' variables are made now, so that a checkpoint can be loaded
    into them (and, under a tf.distribute strategy's scope, on every replica)."""
    model = model_class(generator=unet(img_shape, target_channels, filters=cfg.gen_filters,
                                       max_filters=cfg.gen_max_filters,
                                       keep_known=cfg.task == "inpaint" and not cfg.no_paste),
                        discriminator=patch_discriminator(img_shape, target_channels, filters=cfg.disc_filters,
                                                          n_layers=cfg.disc_layers or None,
                                                          max_filters=cfg.disc_max_filters,
                                                          conditional=cfg.loss.endswith("cgan")),
                        l1_weight=cfg.l1_weight, loss=cfg.loss, ema=cfg.ema)
    model.compile(d_optimizer=keras.optimizers.Adam(cfg.lr, beta_1=cfg.beta_1),
                  g_optimizer=keras.optimizers.Adam(cfg.lr, beta_1=cfg.beta_1), jit_compile=cfg.jit)
    model.d_optimizer.build(model.discriminator.trainable_variables)
    model.g_optimizer.build(model.generator.trainable_variables)
    return model

if __name__ == "__main__":
    raise SystemExit(cli.run(COMMAND))
