"""The tasks' inputs: what each task makes from a target image, as TensorFlow ops.

The MNIST-sized tasks (config.TASKS, 28x28 digits or Fashion-MNIST items):
    inpaint        a square hole set to 0.0 (mask_square), the lesson's task
    edges2digit    the edge map of the strokes (edge_map), the paper's edges -> photo in small
    denoise        heavy Gaussian noise (add_noise)
    superres       a quarter-size (7x7) copy scaled back up (low_resolution)
    edges2fashion  the edge map of a Fashion-MNIST shoe or bag (edge_map, a lower threshold)
The same functions make pairs from a folder of single photos, any size, grey or colour
(config.PHOTO_TASKS: inpaint, colorize, edges, denoise, superres; folder_ds.photos_ds):
    colorize       the grey version of a colour photo, 1 channel (grayscale)
    edges          the edge map of the photo's grey version, 1 channel (edge_map)

Conventions: images are float32 [n, h, w, c] in [-1, 1] (background -1, ink +1); every image gets
its own randomness; `seed` is None for fresh draws or a pair of ints for stateless, repeatable
ones. Nothing here reads files.
"""
import tensorflow as tf

from config import HOLE_SIZES, PHOTO_TASKS, TASKS

SR_FACTOR = 4  # superres: each side shrunk 4 times, as 28 -> 7
HOLE_GREY = 128  # a hole painted into an image file: grey 128, which reads 128 / 127.5 - 1 = 0.0039
GREY_TOLERANCE = 2 / 127.5  # |value| below this (grey 126 to 129) is the painted grey


def mask_square(images, min_size=10, max_size=15, seed=None):
    """Cut one random square hole into each image.

    images: float32 [n, h, w, c] in [-1, 1]. Each image gets its own hole of side s, s uniform over
    min_size..max_size (both included), top-left corner (x0, y0) drawn independently per axis so the
    hole lies fully inside the image. seed: None for fresh random holes, or a pair of ints for holes
    that are the same on every call (tf.random stateless ops).
    Returns (masked, hole): masked is `images` with hole pixels set to 0.0; hole is float32
    [n, h, w, 1], 1 inside the hole and 0 outside.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    n, h, w = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    if seed is None:
        draws = tf.random.uniform([3, n, 1, 1])
    else:
        draws = tf.random.stateless_uniform([3, n, 1, 1], seed=seed)
    # Side, then corner; multiplying a uniform draw by the number of allowed values and flooring
    # gives each allowed value equal probability, and each image its own range.
    size = min_size + tf.cast(draws[0] * (max_size - min_size + 1), tf.int32)  # [n, 1, 1]
    y0 = tf.cast(draws[1] * tf.cast(h - size + 1, tf.float32), tf.int32)       # rows
    x0 = tf.cast(draws[2] * tf.cast(w - size + 1, tf.float32), tf.int32)       # columns: own draw
    rows = tf.range(h)[None, :, None]                                           # [1, h, 1]
    cols = tf.range(w)[None, None, :]                                           # [1, 1, w]
    inside = (rows >= y0) & (rows < y0 + size) & (cols >= x0) & (cols < x0 + size)  # [n, h, w]
    hole = tf.cast(inside, tf.float32)[..., None]                               # [n, h, w, 1]
    return images * (1.0 - hole), hole  # the hole's pixels set to 0.0, as cut_hole does


def cut_hole(images, hole):
    """images (float [n, h, w, c] in [-1, 1]) with the pixels where hole (float [n, h, w, 1]) is 1
    set to 0.0, the grey that inpainting fills; any hole shape (mask_square cuts squares)."""
    return images * (1.0 - hole)


def grey_to_hole(images):
    """images read from files (float [..., h, w, c] in [-1, 1], NumPy) with every pixel painted in
    HOLE_GREY (all channels within GREY_TOLERANCE of 0.0) set to exactly 0.0, the hole that
    inpainting fills: no 8-bit file holds 0.0 itself, and the generator's paste-back (nets.unet
    keep_known) keeps every pixel that is not exactly 0.0. A pixel of that grey elsewhere (the rim
    of a stroke) is drawn by the generator too."""
    import numpy as np
    images = np.array(images, np.float32)
    images[np.all(np.abs(images) < GREY_TOLERANCE, axis=-1)] = 0.0
    return images


def edge_map(images, threshold=0.5):
    """Edges of the strokes, the digit-sized cousin of the paper's HED edges of shoes: Sobel
    gradient magnitude of images (float32 [n, h, w, 1] in [-1, 1]; colour images are made grey
    first), thresholded at `threshold` times its maximum per image. Returns [n, h, w, 1]: +1 on
    edges, -1 elsewhere."""
    images = grayscale(images)
    gradients = tf.image.sobel_edges(images)                       # [n, h, w, 1, 2]
    magnitude = tf.norm(gradients, axis=-1)                         # [n, h, w, 1]
    peak = tf.reduce_max(magnitude, axis=[1, 2, 3], keepdims=True) + 1e-6
    return tf.where(magnitude > threshold * peak, 1.0, -1.0)


def grayscale(images):
    """The grey version of images, float32 [n, h, w, 3] (or already [n, h, w, 1]) in [-1, 1] ->
    [n, h, w, 1] in [-1, 1]: the luma weights of ITU-R 601 (tf.image.rgb_to_grayscale), the ones
    that image decoders use to read a colour file as grey. One-channel images come back unchanged."""
    images = tf.convert_to_tensor(images, tf.float32)
    return images if images.shape[-1] == 1 else tf.image.rgb_to_grayscale(images)


def add_noise(images, stddev=0.8, seed=None):
    """Heavy Gaussian noise: images (float32 [n, h, w, c] in [-1, 1]) plus N(0, stddev) per pixel,
    clipped back to [-1, 1]. seed: None, or a stateless pair as in mask_square."""
    images = tf.convert_to_tensor(images, tf.float32)
    noise = (tf.random.normal(tf.shape(images)) if seed is None
             else tf.random.stateless_normal(tf.shape(images), seed=seed))
    return tf.clip_by_value(images + stddev * noise, -1.0, 1.0)


def low_resolution(images, size=None):
    """Super-resolution input: images (float32 [n, h, w, c] in [-1, 1]) averaged down to
    size x size (or size = (height, width); default: a quarter of each side, 7x7 for 28x28) and
    scaled back up to h x w with bilinear interpolation: same shape, details lost."""
    images = tf.convert_to_tensor(images, tf.float32)
    h, w = images.shape[1], images.shape[2]
    size = (h // SR_FACTOR, w // SR_FACTOR) if size is None else size
    small = tf.image.resize(images, (size, size) if isinstance(size, int) else size, method="area")
    return tf.image.resize(small, (h, w), method="bilinear")


FASHION_EDGE_THRESHOLD = 0.25  # lower than for digits: keeps the inner lines of shoes and bags
PHOTO_EDGE_THRESHOLD = 0.2     # lower still: a photo's strongest edge outshines the rest


def make_src(task, target, seed=None, hole_sizes=HOLE_SIZES, sr_size=None):
    """The input that `task` makes from target images (float32 [n, h, w, c] in [-1, 1]; 28x28x1
    for the MNIST tasks, any size and 1 or 3 channels for the photo tasks):
    inpaint: a square hole set to 0.0 (mask_square); edges2digit: the edge map (edge_map);
    denoise: heavy noise (add_noise); superres: a copy shrunk to sr_size (default a quarter of each
    side) and scaled back up (low_resolution); edges2fashion: the edge map of a shoe or bag;
    colorize: the grey version, [n, h, w, 1] (grayscale); edges: the edge map of a photo, [n, h, w, 1].
    seed: None for fresh randomness, or a stateless pair for repeatable inputs."""
    if task == "inpaint":
        return mask_square(target, *hole_sizes, seed=seed)[0]
    if task == "edges2digit":
        return edge_map(target)
    if task == "edges2fashion":
        return edge_map(target, FASHION_EDGE_THRESHOLD)
    if task == "edges":
        return edge_map(target, PHOTO_EDGE_THRESHOLD)
    if task == "colorize":
        return grayscale(target)
    if task == "denoise":
        return add_noise(target, seed=seed)
    if task == "superres":
        return low_resolution(target, sr_size)
    tasks = ", ".join(dict.fromkeys(TASKS + PHOTO_TASKS))
    raise ValueError(f"unknown task {task!r}: choose one of {tasks}")


def src_channels(task, channels):
    """The channels of the input that `task` makes from targets with `channels`: 1 for colorize and
    the edge tasks (a grey image, an edge map), else the target's own."""
    return 1 if task in ("colorize", "edges", "edges2digit", "edges2fashion") else channels
