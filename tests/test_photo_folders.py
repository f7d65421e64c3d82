"""A folder of single photos made into pairs by --task (folder_ds.photos_ds, tasks.make_src), and
non-square crops (--crop-size HxW): pixels of every task's pairs, the MNIST tasks unchanged, the
repeatable stream, a short run from the command line, and the refusals."""
import json
import os

import matplotlib
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tasks
from config import PHOTO_TASKS, TASKS, Config
from conftest import TINY_NETS
from tools import cli
from tools.folder_ds import get_folder_ds, photos_ds
from tools.image_files import split_pairs

CROP = "32x64"  # height 32, width 64: wide crops, as for street scenes


def write_photos(folder, n=6, size=(48, 80), seed=0, grey=False):
    """n real photo crops (matplotlib's sample photo), height x width = size, as PNGs in folder."""
    path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")
    photo = Image.open(path).convert("L" if grey else "RGB")
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for i, (top, left) in enumerate(rng.integers(0, 300, (n, 2))):
        photo.crop((left, top, left + size[1], top + size[0])).save(os.path.join(folder, f"photo{i}.png"))
    return str(folder)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of 6 training photos in train/ and 4 validation photos in val/, 48x80 each."""
    root = tmp_path_factory.mktemp("photos")
    write_photos(root / "train"), write_photos(root / "val", n=4, seed=1)
    return str(root)


def first_batch(folder, task, training=False, **kwargs):
    """numpy (src, target) of the first batch of 4 that `task` makes from `folder` at CROP."""
    train, val, _, channels = get_folder_ds(folder, batch_size=4, val_size=4, crop_size=CROP, load_size=0,
                                            task=task, verbose=False, **kwargs)
    src, target = next(iter(train if training else val))
    return np.asarray(src), np.asarray(target), channels


@pytest.mark.parametrize("training", [False, True])
def test_each_task_makes_its_input_from_the_crop(photos, training):
    for task in PHOTO_TASKS:
        src, target, channels = first_batch(photos, task, training)
        assert target.shape == (4, 32, 64, 3) and target.min() >= -1 and target.max() <= 1
        assert channels == ((1, 3) if task in ("colorize", "edges") else (3, 3))
        assert src.shape == (4, 32, 64, channels[0]), task
        if task == "inpaint":
            hole = np.all(src == 0.0, axis=-1)                   # [4, 32, 64]: the hole is 0.0 ...
            np.testing.assert_array_equal(src[~hole], target[~hole])  # ... elsewhere the target itself
            for one in hole:
                rows, cols = np.nonzero(one)
                side = rows.max() - rows.min() + 1
                assert 8 <= side <= 16 and cols.max() - cols.min() + 1 == side and one.sum() == side ** 2
        elif task == "colorize":   # one channel: the target's grey (ITU-R 601 luma)
            grey = target @ np.array([0.2989, 0.587, 0.114], np.float32)
            np.testing.assert_allclose(src[..., 0], grey, atol=1e-3)
        elif task == "edges":      # the edge map of the target's grey, +1 on edges
            np.testing.assert_array_equal(src, tasks.edge_map(target, tasks.PHOTO_EDGE_THRESHOLD))
            assert 0.02 < np.mean(src == 1.0) < 0.5
        elif task == "denoise":
            assert 0.3 < np.mean(np.abs(src - target)) < 0.9 and src.min() >= -1 and src.max() <= 1
        else:                      # superres: an 8x16 copy scaled back up
            small = tf.image.resize(target, (8, 16), method="area")
            np.testing.assert_allclose(src, tf.image.resize(small, (32, 64), method="bilinear"), atol=1e-6)


def test_mnist_tasks_are_unchanged(digits):
    """make_src of every MNIST task is bit for bit the lesson's transform with the lesson's values."""
    target = np.asarray(digits[0][:8, :, :, None], np.float32) / 127.5 - 1
    expected = {"inpaint": tasks.mask_square(target, 10, 15, seed=(3, 4))[0],
                "edges2digit": tasks.edge_map(target, 0.5), "edges2fashion": tasks.edge_map(target, 0.25),
                "denoise": tf.clip_by_value(target + 0.8 * tf.random.stateless_normal(target.shape, (3, 4)), -1, 1),
                "superres": tf.image.resize(tf.image.resize(target, (7, 7), method="area"), (28, 28))}
    for task in TASKS:
        np.testing.assert_array_equal(tasks.make_src(task, target, seed=(3, 4)), expected[task], err_msg=task)


def test_the_stream_repeats_and_resumes(photos):
    train, _ = split_pairs(photos, 1)
    args = dict(batch_size=2, channels=3, task="inpaint", crop_size=CROP, load_size=72, seed=3, hole_sizes=(4, 12))
    whole = [np.asarray(s) for s, _ in photos_ds(train, **args).take(5)]
    resumed = [np.asarray(s) for s, _ in photos_ds(train, first_epoch=1, skip_steps=1, **args).take(1)]
    np.testing.assert_array_equal(whole[4], resumed[0])  # epochs of 3 steps: epoch 1, step 1 is step 4
    assert len({b.tobytes() for b in whole}) == 5        # fresh crops and holes every step


@pytest.mark.slow
def test_a_short_run_on_photos_with_a_wide_crop(photos, tmp_path, capsys):
    out = tmp_path / "run"
    cli.main(["--data", photos, "--task", "colorize", "--crop-size", CROP, "--load-size", "36", "--epochs", "1",
              "--out", str(out), "--verbose", "0", *TINY_NETS])   # in process: no TF start
    assert "Photos: 6 for training and 4 for validation" in capsys.readouterr().out
    settings = json.loads((out / "config.json").read_text())
    assert (settings["task"], settings["crop_size"], settings["load_size"]) == ("colorize", CROP, 36)
    import keras
    generator = keras.models.load_model(out / "generator.keras", compile=False)
    assert generator.input_shape == (None, 32, 64, 1) and generator.output_shape == (None, 32, 64, 3)
    assert (out / "samples" / "epoch_001.png").exists()


def refusal(argv, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(argv)
    return capsys.readouterr().err


def test_bad_tasks_and_sizes_are_refused_in_one_line(photos, capsys):
    assert "the tasks are inpaint, colorize, edges" in refusal(["--data", photos, "--task", "edges2digit"], capsys)
    assert "colorize makes pairs from a folder of photos" in refusal(["--task", "colorize"], capsys)
    assert "--crop-size 3x64: image 3x64 is too small for a U-Net" in refusal(
        ["--data", photos, "--task", "edges", "--crop-size", "3x64"], capsys)  # nets.unet's own rule (unet_depth)
    assert cli.parse_args(["--data", photos, "--task", "edges", "--crop-size", "32x48"]).crop_size == "32x48"
    assert "--load-size 33x60 is smaller" in refusal(["--crop-size", CROP, "--load-size", "33x60"], capsys)
    assert "a size is N or HxW" in refusal(["--crop-size", "32by64"], capsys)
    assert "--hole-max <= 32" in refusal(["--data", photos, "--task", "inpaint", "--crop-size", "32",
                                          "--hole-max", "40"], capsys)
    cfg = cli.parse_args(["--data", photos, "--task", "inpaint", "--crop-size", CROP])
    assert (cfg.crop_size, cfg.hole_min, cfg.hole_max, cfg.gen_max_filters) == (CROP, 8, 16, 64)  # shorter side
    assert cli.parse_args(["--data", photos, "--crop-size", "64x64"]).crop_size == 64
    assert Config.paper(crop_size="256x512").gen_max_filters == 512 and Config.paper().hole_min == 10  # pairs


def test_bad_photo_folders_name_the_file(tmp_path):
    folder = write_photos(tmp_path / "small", size=(48, 80))
    Image.new("RGB", (80, 20)).save(os.path.join(folder, "photo9.png"))     # 20 rows < the crop's 32
    with pytest.raises(ValueError, match=r"photo9\.png is 80x20, smaller than --crop-size 32x64"):
        get_folder_ds(folder, crop_size=CROP, load_size=0, task="superres", verbose=False)
    grey = write_photos(tmp_path / "grey", grey=True)
    with pytest.raises(ValueError, match=r"colorize needs colour photos, but all 6 are grayscale \(as .*photo0"):
        get_folder_ds(grey, crop_size=CROP, task="colorize", verbose=False)
    os.makedirs(tmp_path / "ab" / "A"), os.makedirs(tmp_path / "ab" / "B")
    write_photos(tmp_path / "ab" / "A", n=3), write_photos(tmp_path / "ab" / "B", n=3)
    with pytest.raises(ValueError, match="a folder of A/ and B/ pairs needs no --task"):
        get_folder_ds(str(tmp_path / "ab"), crop_size=CROP, task="denoise", verbose=False)


@pytest.mark.slow
def test_pairs_train_at_a_crop_that_the_unet_builds_but_no_power_of_two_divides(tmp_path):
    """192x256: the U-Net halves it 6 times (unet_depth); the command line takes what nets.unet builds."""
    from tools.folder_ds import write_pairs
    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, (3, 192, 512, 3), dtype=np.uint8)
    write_pairs(pictures[:2, :, :256], pictures[:2, :, 256:], str(tmp_path / "pairs"), split="train")
    write_pairs(pictures[2:, :, :256], pictures[2:, :, 256:], str(tmp_path / "pairs"), split="val")
    out = tmp_path / "run"
    cli.main(["--data", str(tmp_path / "pairs"), "--crop-size", "192x256", "--load-size", "0", "--epochs", "1",
              "--out", str(out), "--verbose", "0", *TINY_NETS])
    import keras
    generator = keras.models.load_model(out / "generator.keras", compile=False)
    assert generator.input_shape == (None, 192, 256, 3) and generator.name == "unet_6"
