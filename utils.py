"""Small helpers shared by the modules: seeding, atomic saving, and checking image arrays.

Every file is written to a temporary name in the same folder and renamed into place, so a run
killed in the middle of a save leaves the previous file whole.
"""
import contextlib
import glob
import json
import os
import tempfile

import keras
import numpy as np


def set_seed(seed):
    """Seed Python, NumPy and TensorFlow (keras.utils.set_random_seed) for repeatable runs."""
    keras.utils.set_random_seed(int(seed))


PARTIAL = ".partial"  # marks temporary files; a process killed mid-save leaves one behind


def remove_partial_files(folder):
    """Delete the temporary files that saves killed half-way left in `folder` and its sub-folders."""
    for path in glob.glob(os.path.join(glob.escape(folder), "**", f".*{PARTIAL}*"), recursive=True):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix); on success rename it to `path`.

    If the body raises, the temporary file is removed and `path` keeps its old content.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    # Keep the full suffix (".weights.h5", ".keras"): Keras checks it when saving.
    suffix = name[name.index("."):] if "." in name else ""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f"{PARTIAL}{suffix}", dir=folder)
    os.close(fd)
    os.remove(tmp)  # writers such as h5py want to create the file themselves
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(obj, path):
    """Write `obj` as indented JSON to `path`, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2)


def save_model(model, path):
    """model.save(path) through a temporary file (path ends in .keras)."""
    with atomic_path(path) as tmp:
        model.save(tmp)


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
