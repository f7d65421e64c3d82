"""predict at any size: outputs of exactly the inputs' sizes, tiles that agree with the whole image
away from their seams, and the refusals (a huge image without --tile)."""
import json

import numpy as np
import pytest
from PIL import Image

from config import RunFiles
from tools import cli, predict


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A folder run's files: a tiny RGB generator trained on 32x32 crops, and its config.json."""
    from nets import unet
    folder = tmp_path_factory.mktemp("run")
    unet((32, 32, 3), filters=4, max_filters=8).save(RunFiles(str(folder)).generator)
    (folder / "config.json").write_text(json.dumps({"task": None, "batch_size": 4, "load_size": 0}))
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three images of different sizes and aspects: wide RGB, tall grey, small square RGB."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name, shape in (("wide.png", (40, 75, 3)), ("tall.png", (90, 33)), ("small.jpg", (20, 20, 3))):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / name)
    return folder


def sizes(folder):
    return {path.name: Image.open(path).size for path in sorted(folder.iterdir())}


def test_each_output_has_exactly_its_inputs_size(run_folder, photos, tmp_path):
    predict.predict(str(run_folder), str(photos), str(tmp_path / "whole"))           # --size keep: the default
    assert sizes(tmp_path / "whole") == {"wide.png": (75, 40), "tall.png": (33, 90), "small.png": (20, 20)}
    assert np.asarray(Image.open(tmp_path / "whole" / "wide.png")).std() > 0
    cli.main(["predict", "--model", str(run_folder), "--input", str(photos), "--output", str(tmp_path / "tiled"),
              "--tile", "32"])
    assert sizes(tmp_path / "tiled") == sizes(tmp_path / "whole")
    cli.main(["predict", "--model", str(run_folder), "--input", str(photos / "wide.png"), "--output",
              str(tmp_path / "train"), "--size", "train"])
    assert sizes(tmp_path / "train") == {"wide.png": (32, 32)}                     # centre crop (--load-size 0)


def test_tiles_agree_with_the_whole_image_away_from_their_seams():
    """Eval mode, no dropout: the net is translation-equivariant for shifts of its total stride, so a
    tile on the whole image's grid gives the whole image's result where its borders (zero padding
    of the convs) do not reach: within 1e-5 there, and within 0.05 on the blended seams."""
    from nets import unet
    generator = unet((16, 16, 1), filters=4, max_filters=8, depth=2)               # total stride 4
    for variable in generator.non_trainable_variables:                             # BatchNorm's averages
        variable.assign(variable + np.random.default_rng(1).uniform(0, 0.3, variable.shape).astype("float32"))
    model, step = predict.any_size(generator), predict.size_step(generator)
    image = np.random.default_rng(0).uniform(-1, 1, (40, 56, 1)).astype("float32")
    whole = predict.translate_image(model, image, (16, 16), step)
    tiled = predict.translate_image(model, image, (16, 16), step, tile=24)  # rows 0, 16; cols 0, 16, 32
    assert (predict.tile_starts(40, 24, step), predict.tile_starts(56, 24, step)) == ([0, 16], [0, 16, 32])
    difference = np.abs(whole - tiled)[..., 0]
    assert difference[:16, :16].max() < 1e-5 and difference[:16, 24:32].max() < 1e-5  # 8+ px from any seam
    assert 1e-5 < difference.max() < 0.05                                          # the seams differ, a little


def test_the_any_size_generator_is_the_saved_one_at_the_training_size(run_folder):
    from utils import load_generator
    generator = load_generator(RunFiles(str(run_folder)).generator)
    model = predict.any_size(generator)
    src = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    assert model.input_shape == (None, None, None, 3) and generator.input_shape == (None, 32, 32, 3)
    np.testing.assert_array_equal(predict.translate(model, src), predict.translate(generator, src))
    assert predict.size_step(generator) == 32 and predict.fit_padding(75, 32, 32) == (10, 11)  # 75 -> 96


def test_a_huge_image_without_tile_is_refused_in_one_line(run_folder, tmp_path):
    Image.new("L", (2100, 2100)).save(tmp_path / "huge.png")                       # 4.4 megapixels
    with pytest.raises(SystemExit) as stop:
        cli.main(["predict", "--model", str(run_folder), "--input", str(tmp_path / "huge.png"),
                  "--output", str(tmp_path / "out")])
    message = str(stop.value.code)
    assert "huge.png is 2100x2100, 4.4 megapixels" in message and "--tile" in message and "\n" not in message
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit, match="--tile must be >= 0 and works with --size keep"):
        cli.main(["predict", "--model", str(run_folder), "--input", str(tmp_path / "huge.png"),
                  "--output", str(tmp_path / "out"), "--size", "train", "--tile", "256"])


def test_mnist_runs_keep_the_training_size_by_default(tmp_path, photos):
    from nets import unet
    unet((28, 28, 1), filters=4, max_filters=8).save(RunFiles(str(tmp_path)).generator)
    (tmp_path / "config.json").write_text(json.dumps({"task": "denoise", "batch_size": 64}))
    predict.predict(str(tmp_path), str(photos / "wide.png"), str(tmp_path / "out"))
    assert sizes(tmp_path / "out") == {"wide.png": (28, 28)}                      # resized: a digit net
    predict.predict(str(tmp_path), str(photos / "wide.png"), str(tmp_path / "kept"), size="keep")
    assert sizes(tmp_path / "kept") == {"wide.png": (75, 40)}


def test_a_photo_run_keeps_each_inputs_size_by_default(tmp_path, photos):
    """One rule for every run made from a folder (Config.kind): a --task colorize run on photos
    keeps each input's size, as a run on pairs does; only MNIST runs resize to the training size."""
    from nets import unet
    unet((16, 16, 1), out_channels=3, filters=4, max_filters=8).save(RunFiles(str(tmp_path)).generator)
    (tmp_path / "config.json").write_text(json.dumps({"task": "colorize", "crop_size": 16, "load_size": 0,
                                                      "batch_size": 4}))
    predict.predict(str(tmp_path), str(photos / "wide.png"), str(tmp_path / "out"))
    assert sizes(tmp_path / "out") == {"wide.png": (75, 40)}
