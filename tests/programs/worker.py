"""One worker of a MultiWorkerMirroredStrategy cluster ($TF_CONFIG): exactly `python pix2pix.py
ARGS`, plus a test hook that saves this worker's final weights into DUMP.npz:

    python worker.py DUMP ARGS...
"""
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import keras  # noqa: E402
import numpy as np  # noqa: E402

from tools import cli, training  # noqa: E402

DUMP = sys.argv[1]


class DumpWeights(keras.callbacks.Callback):  # a test hook: every worker's final weights, the saved generator's first
    def on_train_end(self, logs=None):
        nets = (self.model.output_generator, self.model.generator, self.model.discriminator)
        np.savez(DUMP, *[w for net in nets for w in net.get_weights()])


training.train = functools.partial(training.train, callbacks=[DumpWeights()])  # what cli.run_training calls
cli.main(sys.argv[2:])
