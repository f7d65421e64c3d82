"""Load a generator.keras with plain Keras, in a process that never imports this project, and
run it: python load_generator.py PATH HEIGHT WIDTH CHANNELS. Prints "ok" and the outputs' spread."""
import sys

import keras
import numpy as np

path, height, width, channels = sys.argv[1], *map(int, sys.argv[2:5])
assert not any(m in sys.modules for m in ("pix2pix", "nets", "mnist_ds", "visual", "utils")), "project imported"
generator = keras.models.load_model(path, compile=False)
x = np.random.default_rng(0).uniform(-1, 1, (3, height, width, channels)).astype("float32")
y = np.asarray(generator(x))
assert y.shape == (3, height, width, channels) and y.dtype == np.float32, (y.shape, y.dtype)
assert y.min() >= -1 and y.max() <= 1
print("ok", float(y.std()))
