"""Watching and keeping a run: TensorBoard event files, the best generator by validation L1, and
the linear learning-rate decay of --lr-decay-epochs."""
import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from config import Config, RunFiles
from tools.callbacks import LinearDecay
from tools.training import train

pytestmark = pytest.mark.slow  # the learner's subset leaves it out: -m "not slow"


def test_linear_decay_is_constant_then_falls_to_lr_over_n_plus_1():
    decay = LinearDecay(2e-4, epochs=10, decay_epochs=4)
    rates = [decay.rate(e) for e in range(10)]
    assert rates[:6] == [2e-4] * 6
    assert rates[6:] == pytest.approx([2e-4 * k / 5 for k in (4, 3, 2, 1)])


def tags(folder):
    """{tag: [step, ...]} of the event files under `folder`."""
    found = {}
    for path in glob.glob(os.path.join(folder, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append(event.step)
    return found


def test_tensorboard_best_generator_and_decay_in_a_run(mnist_npz, tmp_path):
    cfg = Config.mnist(data=mnist_npz, out=str(tmp_path / "out"), limit=64, batch_size=16, val_size=16, epochs=3,
                       gen_filters=4, gen_max_filters=8, disc_filters=4, verbose=0, tensorboard=True,
                       lr_decay_epochs=2, lr=1e-3)
    model, history = train(cfg)
    files = RunFiles(cfg.out)
    assert float(model.g_optimizer.learning_rate) == pytest.approx(1e-3 / 3)  # last epoch: lr / (2 + 1)
    assert float(model.d_optimizer.learning_rate) == pytest.approx(1e-3 / 3)
    found = tags(files.tensorboard)
    assert sorted(found["sample grid"]) == [1, 2, 3]
    assert {"epoch_d_loss", "epoch_g_l1_loss", "epoch_l1"} <= set(found)  # train/ and validation/
    best = int(np.argmin(history["val_l1"]))
    weights = [keras.models.load_model(p, compile=False).get_weights() for p in (files.best_generator, files.generator)]
    same = all(np.array_equal(a, b) for a, b in zip(*weights))
    assert same == (best == 2), (history["val_l1"], same)
