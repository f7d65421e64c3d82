"""Small helpers shared by the scripts: seeding, atomic saving, and the saving callback.

Every file is written to a temporary name in the same folder and renamed into place, so a run
killed in the middle of a save leaves the previous file whole.
"""
import contextlib
import json
import os
import tempfile

import keras


def set_seed(seed):
    """Seed Python, NumPy and TensorFlow (keras.utils.set_random_seed) for repeatable runs."""
    keras.utils.set_random_seed(int(seed))


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
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=folder)
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


def save_weights(model, path):
    """model.save_weights(path) through a temporary file (path ends in .weights.h5)."""
    with atomic_path(path) as tmp:
        model.save_weights(tmp)


class SaveModels(keras.callbacks.Callback):
    """After every epoch, save the generator (`generator.keras`) and all weights of the model
    (`pix2pix.weights.h5`) into `folder`, each atomically."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        save_model(self.model.generator, os.path.join(self.folder, "generator.keras"))
        save_weights(self.model, os.path.join(self.folder, "pix2pix.weights.h5"))
