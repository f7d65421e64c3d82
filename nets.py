"""The two networks of Pix2Pix (Isola et al. 2017, https://arxiv.org/abs/1611.07004), as builder
functions that return keras.Model, like the lesson's gan_cnn.py:

    unet(img_shape)                 the generator: a U-Net with skip concatenations, tanh output
    patch_discriminator(img_shape)  the conditional PatchGAN: conv layers only, a grid of patch logits
    receptive_field(model)          how many pixels one of its logits sees

Each builder can be pasted into a lesson with its imports (keras, keras.layers; unet also reads
its size rule, config.unet_depth, which the command line shares); their defaults are the paper's
(filters capped at 512, 70x70 patches at 256x256).
"""
import keras
from keras import layers

from config import unet_depth


def unet(img_shape=(28, 28, 1), out_channels=None, filters=64, max_filters=512, depth=None,
         dropout=0.5, dropout_blocks=3, max_pad=0.25, keep_known=False):
    """U-Net generator: float32 [n, h, w, c] in [-1, 1] -> [n, h, w, out_channels] in [-1, 1] (tanh).

    Encoder: `depth` blocks C_k (4x4 conv stride 2, BatchNorm, LeakyReLU 0.2), k = filters, 2*filters,
    ... capped at max_filters: at 256x256 the paper's C64-C128-C256-C512-C512-C512-C512-C512. No
    BatchNorm on the first block nor on the innermost one, where a 1x1 map would be normalised to
    zero. No encoder conv has a bias, as in the paper's code (its U-Net with BatchNorm); a bias
    before LeakyReLU also makes TensorFlow's graph optimizer (remapper) fail on the training step's
    gradient and log an error. Decoder: mirror-image blocks (4x4 transposed conv stride 2,
    BatchNorm, ReLU), each followed by a concatenation with the encoder block of the same size
    (the skip connections); the first `dropout_blocks` use dropout (the paper's CD_k, its only
    noise source).
    Depth follows the size: by default the deepest (at most 8) that reaches a 1x1 bottleneck, or as
    close as padding each side by at most `max_pad` allows. Sides are padded with -1 (background)
    to a multiple of 2**depth and cropped back at the end: 28x28 -> 32x32, depth 5; 256 -> depth 8.
    keep_known (inpainting, not in the paper): the output keeps the input's known pixels and the net
    draws the hole only (paste_known, below, pastes the known pixels over its output with stock
    layers); its losses then come from the hole alone.
    """
    height, width, channels = img_shape
    depth = unet_depth(height, width, depth, max_pad)  # config.py: the size rule the command line uses too
    padded = lambda side: -(-side // 2 ** depth) * 2 ** depth  # noqa: E731  round up to a multiple of 2**depth
    pad_h, pad_w = padded(height) - height, padded(width) - width
    pads = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))
    normal = lambda mean=0.0: keras.initializers.RandomNormal(mean, 0.02)  # noqa: E731  the paper's init

    def down(x, k, norm):  # C_k: halves h and w
        x = layers.Conv2D(k, 4, strides=2, padding="same", use_bias=False, kernel_initializer=normal())(x)
        x = layers.BatchNormalization(momentum=0.9, gamma_initializer=normal(1.0))(x) if norm else x
        return layers.LeakyReLU(0.2)(x)

    def up(x, k, rate):  # C_k, or CD_k with dropout: doubles h and w
        x = layers.Conv2DTranspose(k, 4, strides=2, padding="same", use_bias=False, kernel_initializer=normal())(x)
        x = layers.BatchNormalization(momentum=0.9, gamma_initializer=normal(1.0))(x)
        x = layers.Dropout(rate)(x) if rate else x
        return layers.ReLU()(x)

    def paste_known(src, generated):  # inpainting: the known pixels of src, the generated ones in its hole
        # A pixel of src equal to 0.0, the hole's value (tasks.mask_square), is unknown (8-bit pixels
        # scaled to [-1, 1] never are): known = min(1, 10000 * |src|) is 1 outside the hole, 0 in it,
        # and known * src + (1 - known) * generated is src exactly outside, generated exactly inside.
        # Stock layers, in float32: keras.models.load_model reads the model without this code.
        if src.shape[-1] != generated.shape[-1]:
            raise ValueError(f"keep_known needs as many input as output channels, got {src.shape[-1]} "
                             f"and {generated.shape[-1]}")
        f32 = dict(dtype="float32")
        magnitude = layers.Add(**f32)([layers.ReLU(**f32)(src),                 # |src| = relu(src) + relu(-src)
                                       layers.ReLU(**f32)(layers.Rescaling(-1.0, **f32)(src))])
        known = layers.ReLU(max_value=1.0, **f32)(layers.Rescaling(1e4, **f32)(magnitude))  # 0 or 1
        unknown = layers.Rescaling(-1.0, offset=1.0, **f32)(known)               # 1 - known
        return layers.Add(name="fake", **f32)([layers.Multiply(**f32)([known, src]),
                                               layers.Multiply(**f32)([unknown, generated])])

    # Shapes for unet((28, 28, 1)), the builder's defaults (tests/test_models.py pins them):
    src = keras.Input(img_shape, name="src")            # [n, 28, 28, 1]
    x = src
    if pad_h or pad_w:  # pad with -1: shift to 0, zero-pad, shift back (stock layers only)
        x = layers.Rescaling(1.0, offset=1.0)(x)
        x = layers.ZeroPadding2D(pads)(x)
        x = layers.Rescaling(1.0, offset=-1.0)(x)       # -> [n, 32, 32, 1]
    skips = []
    for level in range(depth):                          # -> [n, 16, 16, 64] -> [n, 8, 8, 128] -> [n, 4, 4, 256]
        x = down(x, min(filters * 2 ** level, max_filters), norm=0 < level < depth - 1)  # -> [n, 2, 2, 512]
        skips.append(x)                                 # -> [n, 1, 1, 512], the bottleneck
    for i, skip in enumerate(reversed(skips[:-1])):     # -> [n, 2, 2, 512 + 512] -> [n, 4, 4, 256 + 256]
        x = up(x, skip.shape[-1], dropout if i < dropout_blocks else 0.0)
        x = layers.Concatenate()([x, skip])             # -> [n, 8, 8, 128 + 128] -> [n, 16, 16, 64 + 64]
    x = layers.Conv2DTranspose(out_channels or channels, 4, strides=2, padding="same",
                               kernel_initializer=normal())(x)  # -> [n, 32, 32, 1]
    if pad_h or pad_w:
        x = layers.Cropping2D(pads)(x)                  # -> [n, 28, 28, 1]
    fake = layers.Activation("tanh", dtype="float32", name="generated" if keep_known else "fake")(x)
    if keep_known:
        fake = paste_known(src, fake)
    return keras.Model(src, fake, name=f"unet_{depth}")


def patch_discriminator(img_shape=(28, 28, 1), target_channels=None, filters=64, n_layers=None,
                        max_filters=512, conditional=True):
    """Conditional PatchGAN: (src [n, h, w, c], target [n, h, w, target_channels]) -> logits
    [n, gh, gw, 1], one real/fake logit per overlapping patch (no sigmoid: use a loss with logits).
    conditional=False gives the unconditional D of the paper's ablation: target alone -> logits.

    Conv layers only (no Flatten, no Dense), so any image size gives a grid of patches. `n_layers`
    stride-2 blocks C_k (4x4 conv, BatchNorm except on the first, LeakyReLU 0.2), then one stride-1
    block and a 1-channel conv (both 4x4, padding 1, as in the paper). Each patch's receptive field
    (see `receptive_field`): n_layers=3 -> 70x70, the paper's default; 2 -> 34x34; 1 -> 16x16.
    Default (None): the paper's 3, or fewer for images too small to leave a grid of logits (under
    17 pixels a side). At 28x28 three layers give a 2x2 grid of 70x70 patches, each of which sees
    the whole pair: on MNIST inpainting that made the fills more real than 34x34 patches (two
    layers) did, for about 1.15x the step's time (docs/results.md).
    """
    height, width, channels = img_shape
    grid = lambda n: -(-min(height, width) // 2 ** n) - 2  # noqa: E731  logits per side with n stride-2 layers
    n_layers = n_layers or next((n for n in (3, 2, 1) if grid(n) >= 1), 1)
    if grid(n_layers) < 1:
        fits = max((n for n in (1, 2, 3, 4, 5, 6, 7, 8) if grid(n) >= 1), default=0)
        raise ValueError(f"image {height}x{width} is too small for a PatchGAN with {n_layers} stride-2 layers"
                         + (f"; at most {fits} fit" if fits else ": it needs sides of at least 5 pixels"))
    normal = lambda mean=0.0: keras.initializers.RandomNormal(mean, 0.02)  # noqa: E731  the paper's init
    src = keras.Input(img_shape, name="src")
    target = keras.Input((height, width, target_channels or channels), name="target")
    # D judges (input, output) pairs, not outputs alone: this is what makes the GAN conditional.
    x = layers.Concatenate()([src, target]) if conditional else target  # [n, 28, 28, 1 + 1]
    for i in range(n_layers + 1):  # -> [n, 14, 14, 64] -> [n, 7, 7, 128] -> [n, 4, 4, 256] -> [n, 3, 3, 512]
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
                           name="patch_logits")(x)      # -> [n, 2, 2, 1]
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
