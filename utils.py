"""Small helpers shared by the modules: seeding, atomic saving, and checking image arrays.

Every file is written to a temporary name in the same folder and renamed into place, so a run
killed in the middle of a save leaves the previous file whole.
"""
import contextlib
import errno
import glob
import json
import os
import shutil
import tempfile

import keras
import numpy as np

from config import check_model_file

try:
    import resource  # the file-size limit; POSIX only
except ImportError:  # Windows
    resource = None


def set_seed(seed):
    """Seed Python, NumPy and TensorFlow (keras.utils.set_random_seed) for repeatable runs."""
    keras.utils.set_random_seed(int(seed))


PARTIAL = ".partial"  # marks temporary files; a process killed mid-save leaves one behind


def remove_partial_files(folder):
    """Delete the temporary files that saves killed half-way left in `folder` and its sub-folders."""
    for path in glob.glob(os.path.join(glob.escape(folder), "**", f".*{PARTIAL}*"), recursive=True):
        os.remove(path)


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no space, over quota, over the file-size limit


@contextlib.contextmanager
def atomic_path(path, keep_previous=None):
    """Yield a temporary path beside `path` (same suffix) to write to; when the body is done, make
    it `path` durably: the file is flushed to disk, renamed over `path`, and the folder flushed,
    so a crash or power cut leaves the old file or the new one, whole.

    If the body raises, the temporary file is removed and `path` keeps its old content. A full
    disk (or quota, or file-size limit) becomes an OSError in one line naming the folder.
    keep_previous: a path that gets the old `path` (a hard link, or a copy) before it is replaced.
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
        flush_to_disk(tmp)
        if keep_previous and os.path.exists(path):
            keep_copy(path, keep_previous)
        os.replace(tmp, path)
        flush_to_disk(folder)
    except Exception as e:
        if not is_disk_full(e):
            raise
        old = f" (its last version took {size_text(os.path.getsize(path))})" if os.path.exists(path) else ""
        raise disk_full_error(path, old) from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def ensure_room(path, needed):
    """Raise the one-line "disk is full" OSError unless `needed` bytes can be written beside `path`:
    free space on its disk, and the file-size limit (ulimit -f) of this process. For writers that
    a full disk can crash instead of raising (HDF5, under h5py), so they are not even started."""
    folder = os.path.dirname(os.path.abspath(path))
    room = shutil.disk_usage(folder).free
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource else -1
    if limit not in (-1, getattr(resource, "RLIM_INFINITY", -1)):
        room = min(room, limit)
    if needed > room:
        raise disk_full_error(path, f" ({size_text(needed)} needed, {size_text(room)} free)")


def disk_full_error(path, detail=""):
    """The one-line OSError for a save of `path` that a full disk stopped; `detail`: the sizes."""
    folder = os.path.dirname(os.path.abspath(path))
    return OSError(f"the disk is full: no room to write {os.path.basename(path)}{detail} into {folder}; the files "
                   f"saved before are whole. Free some space, or choose another --out, and run again")


def size_text(nbytes):
    """A file size for people: "640 B", "18 KB", "1.2 MB", "3.4 GB"."""
    for unit, scale in (("GB", 2 ** 30), ("MB", 2 ** 20), ("KB", 2 ** 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}" if nbytes < 10 * scale else f"{nbytes / scale:.0f} {unit}"
    return f"{nbytes} B"


def keep_copy(path, copy_path):
    """Make `copy_path` a copy of `path`, atomically: a hard link where the file system has them
    (no space used while `path` is not replaced), else a copy."""
    tmp = f"{os.path.join(os.path.dirname(copy_path), '.' + os.path.basename(copy_path))}{PARTIAL}"
    if os.path.exists(tmp):
        os.remove(tmp)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, copy_path)


def flush_to_disk(path):
    """os.fsync a file, or a folder (its entries: a rename in it), where the system allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a folder cannot be opened on some systems (Windows): nothing to flush there
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno in DISK_FULL:
            raise
    finally:
        os.close(fd)


def is_disk_full(error):
    """True if `error`, or an error it was raised from, says the disk is full (libraries such as
    h5py and Keras wrap the OSError, and some keep only its message)."""
    while error is not None:
        if getattr(error, "errno", None) in DISK_FULL or any(
                text in str(error) for text in ("No space left", "Disk quota exceeded", "File too large")):
            return True
        error = error.__cause__ or error.__context__
    return False


def write_json(obj, path):
    """Write `obj` as indented JSON to `path`, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2)


def save_model(model, path):
    """model.save(path) through a temporary file (path ends in .keras); a model trained in mixed
    precision is saved as its float32 copy (in_float32), which computes in float32 where it loads."""
    with atomic_path(path) as tmp:
        in_float32(model).save(tmp)


def in_float32(model):
    """`model` (a functional keras.Model) if every layer computes in float32, else a copy with the
    same weights whose layers all compute in float32 (a net built under a mixed_bfloat16 or
    mixed_float16 policy keeps float32 weights, so nothing is lost)."""
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    config = model.get_config()
    for layer in config["layers"]:
        layer["config"]["dtype"] = "float32"
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def check_images(images, name="images", img_shape=None):
    """float32 [n, h, w, c] array of `images`, or ValueError naming what is wrong: the dtype (not
    floats), the rank, the size or channels (if img_shape is given; None in it takes any), or
    values outside [-1, 1]."""
    array = np.asarray(images)
    if array.dtype.kind != "f":
        raise ValueError(f"{name} must be floats in [-1, 1], got dtype {array.dtype} "
                         f"(scale uint8 images with x / 127.5 - 1)")
    if array.ndim != 4:
        raise ValueError(f"{name} must have rank 4 [n, height, width, channels], got shape {list(array.shape)}")
    if img_shape is not None and (len(img_shape) != 3 or any(  # None: any size, as an any-size generator takes
            want is not None and want != got for want, got in zip(img_shape, array.shape[1:]))):
        raise ValueError(f"{name} are {list(array.shape[1:])} (height, width, channels) but the model "
                         f"takes {list(img_shape)}")
    low, high = float(np.min(array)), float(np.max(array))
    if not (-1.0 - 1e-3 <= low and high <= 1.0 + 1e-3):  # NaN fails too
        raise ValueError(f"{name} must lie in [-1, 1], got values from {low} to {high}")
    return array.astype(np.float32)


def load_generator(path):
    """keras.models.load_model(path, compile=False) for a saved generator (a .keras file), or an
    error in one line that names the file and says what it is instead: missing, empty, an HDF5
    checkpoint, text, or a damaged zip."""
    check_model_file(path)
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many kinds, with long messages
        first_line = (str(e).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"{path} is a zip archive but not a loadable Keras model ({type(e).__name__}: "
                         f"{first_line})") from e
    shapes = [model.input_shape, model.output_shape]
    if not all(isinstance(shape, tuple) and len(shape) == 4 for shape in shapes):
        raise ValueError(f"{path} is a Keras model but not an image generator: it maps {shapes[0]} to {shapes[1]}, "
                         f"not images [n, h, w, c] to images")
    return model
