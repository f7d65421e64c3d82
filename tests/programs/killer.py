"""Train like `python pix2pix.py ARGS`, but SIGKILL this process right after training step STEP of
an 8-step epoch (after the library's checkpoint callback has run):

    python killer.py STEP ARGS...
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import keras  # noqa: E402

from tools import cli, training  # noqa: E402

STEP = int(sys.argv[1])


class DieAfterStep(keras.callbacks.Callback):  # runs after the library's callbacks
    def on_train_batch_end(self, batch, logs=None):
        if self.params["steps"] == 8 and batch + 1 == STEP:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind


training.train(cli.parse_args(sys.argv[2:]), callbacks=[DieAfterStep()])
