"""Every writer of a run's files, first with room, then on a "full disk" (no file may grow past
LIMIT bytes: RLIMIT_FSIZE, EFBIG as ENOSPC). Prints RESULT{json}: per writer, whether it raised
the one-line disk-full error, whether the earlier file is unchanged, and any partial files left.

    python full_disk_writers.py FOLDER
"""
import hashlib
import json
import os
import resource
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import numpy as np  # noqa: E402

import utils  # noqa: E402
import visual  # noqa: E402
from nets import patch_discriminator, unet  # noqa: E402
from pix2pix import Pix2Pix  # noqa: E402
from tools.checkpoint import save_checkpoint  # noqa: E402

folder = sys.argv[1]
model = Pix2Pix(generator=unet((16, 16, 1), filters=4, max_filters=8),
                discriminator=patch_discriminator((16, 16, 1), filters=4))
model.compile()
model.d_optimizer.build(model.discriminator.trainable_variables)
model.g_optimizer.build(model.generator.trainable_variables)
rng = np.random.default_rng(0)


def grid(seed):
    return (np.random.default_rng(seed).uniform(0, 255, (64, 96, 3))).astype(np.uint8)


WRITERS = {  # name: (file, write(path, version)) with versions 1 and 2 of different content
    "checkpoint": ("pix2pix.weights.h5", lambda path, v: save_checkpoint(model, path, {"epoch": v})),
    "generator": ("generator.keras", lambda path, v: utils.save_model(model.generator, path)),
    "grid": ("epoch_001.png", lambda path, v: visual.save_image(grid(v), path)),
    "gif": ("samples.gif", lambda path, v: visual.save_gif([os.path.join(folder, "epoch_001.png")] * (v + 1), path)),
    "history": ("history.json", lambda path, v: utils.write_json({"d_loss": [0.5] * 100 * v}, path)),
    "curves": ("losses.png", lambda path, v: visual.plot_history({"d_loss": [0.5, 0.4][:v]}, path)),
}


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


before = {}
for name, (file, write) in WRITERS.items():
    write(os.path.join(folder, file), 1)
    before[name] = digest(os.path.join(folder, file))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))  # 64 bytes: nothing new fits
result = {}
for name, (file, write) in WRITERS.items():
    try:
        write(os.path.join(folder, file), 2)
        error = None
    except OSError as e:
        error = str(e)
    result[name] = {"error": error, "kept": digest(os.path.join(folder, file)) == before[name]}
result["partial"] = sorted(n for n in os.listdir(folder) if n.startswith("."))
print("RESULT" + json.dumps(result))
