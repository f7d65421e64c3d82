"""Folders of paired images: both layouts, the paper's jitter kept aligned, direction, resumable
stream, training and predicting from the command line, and every kind of bad input."""
import json
import os

import matplotlib
import numpy as np
import pytest
from PIL import Image

import config
from conftest import RUN_FILES, run_cli, run_here
from tools import cli
from tools.folder_ds import augment, get_folder_ds, pairs_ds, write_pairs
from tools.image_files import check_pairs, find_pairs

SMALL_NETS = ["--crop-size", "32", "--load-size", "36", "--gen-filters", "8", "--disc-filters", "8",
              "--verbose", "0"]


def photo_crops(n, size=48, seed=0):
    """n real RGB photo crops, uint8 [n, size, size, 3], from matplotlib's sample photo."""
    path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")
    photo = np.asarray(Image.open(path).convert("RGB"))
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, min(photo.shape[:2]) - size, (n, 2))
    return np.stack([photo[y:y + size, x:x + size] for y, x in corners])


@pytest.fixture(params=["side_by_side", "ab"])
def inverted_pairs(request, tmp_path):
    """A folder in either layout whose B images are the A photos inverted (255 - A), as PNG."""
    a = photo_crops(6)
    write_pairs(a, 255 - a, tmp_path / "pairs", layout=request.param)
    return str(tmp_path / "pairs"), request.param


def test_both_layouts_are_found_with_all_pairs(inverted_pairs):
    root, layout = inverted_pairs
    pairs = find_pairs(root)
    assert len(pairs) == 6
    assert all((p.b_path is None) == (layout == "side_by_side") for p in pairs)
    assert check_pairs(pairs) == (3, 3)


def test_jittered_pairs_stay_aligned(inverted_pairs):
    root, _ = inverted_pairs
    pairs = find_pairs(root)
    ds = pairs_ds(pairs, 2, (3, 3), crop_size=32, load_size=40, seed=1)
    batches = [b for _, b in zip(range(6), ds)]
    for src, target in batches:
        assert src.shape == target.shape == (2, 32, 32, 3)
        # B = 255 - A pixel for pixel: any crop or flip applied to one half only would break this
        np.testing.assert_allclose(np.asarray(src), -np.asarray(target), atol=1e-5)
    # and the jitter does move: the same photo is cropped differently from epoch to epoch
    crops = np.concatenate([np.asarray(s) for s, _ in batches])
    assert len({c.tobytes() for c in crops}) == len(crops)


def test_crop_and_mirror_are_the_same_for_both_halves():
    ramp = np.tile(np.linspace(-1, 1, 40, dtype=np.float32), (40, 1))[..., None]  # grows to the right
    flips = []
    for k in range(20):
        a, b = augment(ramp, -ramp, seed=[k, 0], crop_size=32, load_size=0)
        a, b = np.asarray(a)[..., 0], np.asarray(b)[..., 0]
        np.testing.assert_allclose(a, -b, atol=1e-6)
        flips.append(a[0, 0] > a[0, -1])        # mirrored: the ramp falls to the right
        assert a.shape == (32, 32)
    assert 3 <= sum(flips) <= 17                # mirrored about half the time
    a, _ = augment(ramp, -ramp, seed=[3, 0], crop_size=32, load_size=0, flip=False)
    assert np.asarray(a)[0, 0, 0] < np.asarray(a)[0, -1, 0]  # flip=False never mirrors


def test_nearest_jitter_keeps_a_label_maps_colours_and_bilinear_blends_them(inverted_pairs):
    labels = np.zeros((40, 40, 3), np.float32)
    labels[:, 13:27] = [1.0, -1.0, 0.5]                      # a band of one label colour on black
    colours = {tuple(c) for c in labels.reshape(-1, 3)}
    for seed in range(5):
        near, _ = augment(labels, labels, seed=[seed, 0], crop_size=32, load_size=45, method="nearest")
        assert {tuple(c) for c in np.asarray(near).reshape(-1, 3)} <= colours   # only the map's own colours
    smooth, _ = augment(labels, labels, seed=[0, 0], crop_size=32, load_size=45)
    assert len({tuple(c) for c in np.asarray(smooth).reshape(-1, 3)}) > len(colours)  # blended edges
    # the setting reaches the training pipeline: nearest copies the files' 8-bit values, bilinear blends them
    root, _ = inverted_pairs
    for method, exact in (("nearest", True), ("bilinear", False)):
        train_ds, *_ = get_folder_ds(root, 2, 2, crop_size=32, load_size=45, verbose=False, jitter_resize=method)
        levels = (np.asarray(next(iter(train_ds))[0]) + 1) * 127.5
        assert np.allclose(levels, np.round(levels), atol=1e-3) == exact
    assert config.Config(jitter_resize="nearest").jitter_resize == "nearest"
    with pytest.raises(ValueError, match="--jitter-resize must be one of bilinear, nearest"):
        config.Config(jitter_resize="cubic")


def test_a_folder_gets_the_folder_preset_and_auto_mode_follows_the_average(inverted_pairs):
    from tools.predict import auto_mode
    root, _ = inverted_pairs
    cfg = config.Config.for_data(data=root)
    assert cfg == config.Config.folder(data=root) and cfg.ema == 0.999 and cfg.batch_size == 1
    assert auto_mode(cfg) == "eval" and auto_mode(cfg.replace(ema=0.0)) == "paper"  # the paper's own runs
    assert auto_mode(config.Config.mnist()) == auto_mode(None) == "eval"


def test_direction_swaps_input_and_target(inverted_pairs):
    root, _ = inverted_pairs
    pairs = find_pairs(root)
    a_to_b = next(iter(pairs_ds(pairs, 6, (3, 3), training=False, crop_size=32)))
    b_to_a = next(iter(pairs_ds(pairs, 6, (3, 3), training=False, crop_size=32, direction="BtoA")))
    np.testing.assert_array_equal(a_to_b[0], b_to_a[1])
    np.testing.assert_array_equal(a_to_b[1], b_to_a[0])
    a_file = np.asarray(Image.open(pairs[0].a_path).convert("RGB"))[:, :48] / 127.5 - 1  # the left half
    assert abs(float(np.mean(a_to_b[0][0])) - float(np.mean(a_file))) < 0.02  # src is A, resized


def test_training_stream_resumes_exactly(inverted_pairs):
    root, _ = inverted_pairs
    pairs = find_pairs(root)
    args = dict(channels=(3, 3), crop_size=32, load_size=40, seed=5)
    whole = [np.asarray(s) for _, (s, _) in zip(range(7), pairs_ds(pairs, 2, **args))]  # 3 steps an epoch
    resumed = [np.asarray(s) for _, (s, _) in zip(range(2), pairs_ds(pairs, 2, first_epoch=1, skip_steps=2, **args))]
    np.testing.assert_array_equal(resumed[0], whole[5])
    np.testing.assert_array_equal(resumed[1], whole[6])


def test_grayscale_to_colour_folder_and_held_out_validation(tmp_path, digits, capsys):
    gray = np.stack([np.asarray(Image.fromarray(d).resize((48, 48))) for d in digits[0][:10]])[..., None]
    write_pairs(gray, photo_crops(10), tmp_path / "d", layout="ab", split="")  # no split folders
    train_ds, val_ds, steps, channels = get_folder_ds(str(tmp_path / "d"), batch_size=2, val_size=5,
                                                      crop_size=32, load_size=40)
    assert channels == (1, 3) and steps == 4  # 1 of 10 held out (at most a tenth), 9 // 2 steps
    src, target = next(iter(train_ds))
    assert src.shape == (2, 32, 32, 1) and target.shape == (2, 32, 32, 3)
    assert "holding out 1" in capsys.readouterr().out
    assert sum(len(s) for s, _ in val_ds) == 1


# ---------------------------------------------------------------------------------------------
# Bad input: each gets an error that names the file
# ---------------------------------------------------------------------------------------------

def make_bad(kind, root):
    """Build a bad folder of kind `kind` under root; returns (folder, what the message must name)."""
    a = photo_crops(3)
    if kind == "missing":
        return str(root / "nowhere"), "nowhere"
    if kind == "empty":
        os.makedirs(root / "train")
        (root / "train" / "notes.txt").write_text("not an image suffix: ignored")
        return str(root), "no image files"
    if kind == "not_an_image":
        write_pairs(a, a, root)
        (root / "train" / "broken.jpg").write_text("this is not a JPEG")
        return str(root), "broken.jpg"
    if kind in ("cut_short_png", "cut_short_jpg"):  # whole headers, the rest lost: fails only when decoded
        write_pairs(a, a, root)
        suffix = kind[-3:]
        Image.fromarray(a[0]).save(root / "train" / f"cut.{suffix}")
        data = (root / "train" / f"cut.{suffix}").read_bytes()
        (root / "train" / f"cut.{suffix}").write_bytes(data[:len(data) // 2])
        return str(root), f"cut.{suffix}"
    if kind == "too_large":  # 20000x20000 pixels in a few kB: PIL refuses to decode it
        write_pairs(a, a, root)
        Image.new("1", (20000, 20000)).save(root / "train" / "huge.png")
        return str(root), "huge.png"
    if kind == "odd_width":
        write_pairs(a, a, root)
        Image.fromarray(np.zeros((48, 95, 3), np.uint8)).save(root / "train" / "odd.png")
        return str(root), "odd.png"
    if kind == "sizes_differ":
        write_pairs(a, a, root, layout="ab")
        Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(root / "B" / "train" / "00001.png")
        return str(root), "00001.png"
    if kind == "no_partner":
        write_pairs(a, a, root, layout="ab")
        Image.fromarray(a[0]).save(root / "A" / "train" / "lonely.png")
        return str(root), "lonely.png"
    if kind == "no_partner_in_a":
        write_pairs(a, a, root, layout="ab")
        os.remove(root / "A" / "train" / "00002.png")
        return str(root), "00002.png"
    if kind == "same_name_twice":
        write_pairs(a, a, root, layout="ab")
        Image.fromarray(a[0]).save(root / "A" / "train" / "00001.jpg")
        return str(root), "00001.jpg"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "empty", "not_an_image", "cut_short_png", "cut_short_jpg", "too_large",
                                  "odd_width", "sizes_differ", "no_partner", "no_partner_in_a", "same_name_twice"])
def test_bad_folders_are_named_in_the_error(kind, tmp_path):
    folder, named = make_bad(kind, tmp_path)
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        get_folder_ds(folder, crop_size=32, load_size=40, verbose=False)
    assert named in str(error.value)


def test_image_smaller_than_the_crop(tmp_path):
    a = photo_crops(3, size=24)
    write_pairs(a, a, tmp_path)
    # without resizing, a 24x24 half cannot give a 32x32 crop: the error names the file
    with pytest.raises(ValueError, match=r"00000\.png.*smaller than --crop-size 32"):
        get_folder_ds(str(tmp_path), crop_size=32, load_size=0, verbose=False)
    # with --load-size the paper's resize makes it fit (documented)
    train_ds, _, _, _ = get_folder_ds(str(tmp_path), crop_size=32, load_size=36, val_size=1, verbose=False)
    assert next(iter(train_ds))[0].shape == (1, 32, 32, 3)


def test_grayscale_mixed_with_colour_is_read_as_colour(tmp_path, capsys):
    a = photo_crops(3)
    write_pairs(a, a, tmp_path)
    Image.fromarray(np.concatenate([a[0, :, :, 0]] * 2, axis=1)).save(tmp_path / "train" / "gray.png")
    assert check_pairs(find_pairs(str(tmp_path))) == (3, 3)
    assert "gray.png is grayscale" in capsys.readouterr().out


def test_cli_errors_for_a_bad_folder_and_for_task_with_a_folder(tmp_path):
    folder, named = make_bad("odd_width", tmp_path / "bad")
    code, message = run_here(["--data", folder, "--out", str(tmp_path / "out"), *SMALL_NETS])
    assert code == 1 and named in message
    assert not (tmp_path / "out").exists()  # nothing written
    code, message = run_here(["--data", folder, "--task", "edges2digit", "--out", str(tmp_path / "out")])
    assert code == 2 and "the tasks are inpaint, colorize, edges, denoise, superres" in message


# ---------------------------------------------------------------------------------------------
# Training and predicting from the command line
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1-epoch run, B to A, at 32x32 with small nets, on a side-by-side folder of colour photo
    crops and their inverses (6 train/ pairs, 2 val/ pairs)."""
    root = tmp_path_factory.mktemp("facades")
    a = photo_crops(8)
    write_pairs(a[:6], 255 - a[:6], root / "data", split="train")
    write_pairs(a[6:], 255 - a[6:], root / "data", split="val")
    result = run_cli(["--data", str(root / "data"), "--direction", "BtoA", "--epochs", "1",
                  "--out", str(root / "run"), *SMALL_NETS])
    assert result.returncode == 0, result.stderr
    return root


@pytest.mark.slow
def test_folder_run_writes_every_output_and_its_settings(trained):
    run_dir = trained / "run"
    for name in RUN_FILES:
        assert (run_dir / name).exists() or name.endswith("002.png"), name  # 1 epoch
    settings = json.loads((run_dir / "config.json").read_text())
    # the paper's settings for folders with the measured weight average, and what predict needs
    assert settings["batch_size"] == 1 and settings["l1_weight"] == 100.0 and settings["ema"] == 0.999
    assert settings["gen_max_filters"] == 64  # the paper's 512, scaled to the 32x32 crop: twice its side
    assert (settings["direction"], settings["crop_size"], settings["load_size"]) == ("BtoA", 32, 36)
    assert len(json.loads((run_dir / "history.json").read_text())["d_loss"]) == 1


@pytest.mark.slow
def test_predict_a_file_and_a_folder(trained, tmp_path):
    model = str(trained / "run" / "generator.keras")
    photo = Image.fromarray(photo_crops(1, size=70, seed=3)[0])
    photo.save(tmp_path / "one.jpg")
    result = run_cli(["predict", "--model", str(trained / "run"), "--input", str(tmp_path / "one.jpg"),  # a run folder
                  "--output", str(tmp_path / "o1")])
    assert result.returncode == 0, result.stderr
    assert "eval mode" in result.stdout  # the saved average: its averaged moving statistics (auto_mode)
    assert os.listdir(tmp_path / "o1") == ["one.png"]
    out = Image.open(tmp_path / "o1" / "one.png")
    assert out.size == (70, 70) and out.mode == "RGB"  # folder runs: --size keep, the input's own size

    result = run_cli(["predict", "--model", model, "--input", str(trained / "data" / "val"), "--pairs",
                  "--mode", "eval", "--output", str(tmp_path / "o2")])
    assert result.returncode == 0, result.stderr
    assert "washed out" not in result.stdout  # eval is auto's own choice for an averaged run: no note
    assert sorted(os.listdir(tmp_path / "o2")) == ["00000.png", "00001.png"]
    pair_w, pair_h = Image.open(next((trained / "data" / "val").iterdir())).size
    assert all(Image.open(tmp_path / "o2" / n).size == (pair_w // 2, pair_h) for n in os.listdir(tmp_path / "o2"))


@pytest.mark.slow
def test_evaluate_scores_the_test_pairs_and_writes_a_page(trained, tmp_path, capsys):
    result = run_cli(["evaluate", "--model", str(trained / "run"), "--data", str(trained / "data"), "--no-fid",
                      "--out", str(tmp_path / "scores")])
    assert result.returncode == 0, result.stderr
    scores = json.loads((tmp_path / "scores" / "scores.json").read_text())
    assert scores["pairs"] == 2 and scores["data"].endswith("val") and scores["direction"] == "BtoA"
    assert "--no-fid" in scores["note"] and 0 < scores["l1"] < 2 and "index.html" in result.stdout
    page = (tmp_path / "scores" / "index.html").read_text()
    assert all(f'data-v="{name}"' in page for name in ("00000.png", "00001.png"))  # a row per test pair
    for flags, message in ((["--task", "denoise"], "leave --task out"), ([], "give --data, a folder of test pairs")):
        data = ["--data", str(trained / "data")] if flags else []
        with pytest.raises(SystemExit):
            cli.parse_command(["evaluate", "--model", str(trained / "run"), *data, *flags])
        assert message in capsys.readouterr().err


@pytest.mark.slow
def test_predict_refuses_bad_requests(trained, tmp_path):
    model = str(trained / "run" / "generator.keras")
    inputs = trained / "data" / "val"
    before = {n: (inputs / n).read_bytes() for n in os.listdir(inputs)}
    code, message = run_here(["predict", "--model", model, "--input", str(inputs), "--output", str(inputs)])
    assert code == 1 and "would overwrite the input" in message
    assert {n: (inputs / n).read_bytes() for n in os.listdir(inputs)} == before  # inputs untouched
    Image.fromarray(np.zeros((32, 63, 3), np.uint8)).save(tmp_path / "odd.png")
    code, message = run_here(["predict", "--model", model, "--input", str(tmp_path / "odd.png"), "--pairs",
                              "--output", str(tmp_path / "o")])
    assert code == 1 and "odd.png" in message and "even width" in message
    code, message = run_here(["predict", "--model", str(tmp_path / "none.keras"), "--input", str(tmp_path / "odd.png"),
                              "--output", str(tmp_path / "o")])
    assert code == 1 and "none.keras does not exist" in message
    mixed = tmp_path / "mixed"  # 20 good images and a broken one: checked before anything is written
    mixed.mkdir()
    for i, image in enumerate(photo_crops(20)):
        Image.fromarray(image).save(mixed / f"{i:02d}.png")
    (mixed / "zz.png").write_text("not a PNG")
    code, message = run_here(["predict", "--model", model, "--input", str(mixed), "--output", str(tmp_path / "o3")])
    assert code == 1 and "zz.png: not a readable image" in message
    assert not (tmp_path / "o3").exists()


@pytest.mark.slow
def test_predict_rewrites_its_own_outputs_but_never_a_users_file(trained, tmp_path):
    model = str(trained / "run" / "generator.keras")
    image = trained / "data" / "val" / sorted(os.listdir(trained / "data" / "val"))[0]
    out = tmp_path / "out"
    for _ in range(2):  # a second run rewrites what the first wrote
        code, _ = run_here(["predict", "--model", model, "--input", str(image), "--output", str(out)])
        assert code == 0 and (out / (image.stem + ".png")).exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in sorted(os.listdir(trained / "data" / "val"))[:2]:  # two of the user's files in the way
        (mine / (os.path.splitext(name)[0] + ".png")).write_bytes(b"the user's own picture")
    code, message = run_here(["predict", "--model", model, "--input", str(trained / "data" / "val"),
                              "--output", str(mine)])
    assert code == 1 and "which predict did not write" in message and image.stem + ".png (and 1 more)" in message
    assert (mine / (image.stem + ".png")).read_bytes() == b"the user's own picture"


def test_predict_notes_inputs_that_look_like_the_other_kind(tmp_path, capsys):
    from tools.predict import check_inputs
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(tmp_path / "pair.png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "single.png")
    check_inputs([str(tmp_path / "pair.png")], (32, 32, 3))
    assert "add --pairs" in capsys.readouterr().out
    check_inputs([str(tmp_path / "single.png")], (32, 32, 3), pairs=True)
    assert "drop --pairs" in capsys.readouterr().out
    check_inputs([str(tmp_path / "pair.png")], (32, 32, 3), pairs=True)
    check_inputs([str(tmp_path / "single.png")], (32, 32, 3))
    assert capsys.readouterr().out == ""


def test_write_pairs_layouts_read_back(tmp_path):
    a, b = photo_crops(2), photo_crops(2, seed=1)
    files = write_pairs(a, b, tmp_path / "s")
    assert Image.open(files[0]).size == (96, 48)
    pairs = find_pairs(str(tmp_path / "s"))
    both = np.asarray(Image.open(pairs[1].a_path))
    np.testing.assert_array_equal(both[:, :48], a[1])
    np.testing.assert_array_equal(both[:, 48:], b[1])
    with pytest.raises(ValueError, match="layout"):
        write_pairs(a, b, tmp_path / "x", layout="stacked")
    assert config.is_pair_folder(str(tmp_path / "s")) and not config.is_pair_folder(str(tmp_path / "none"))
