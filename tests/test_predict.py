"""predict's notes on inputs that will not look like the training inputs, and its one-line
refusal of files that are not a saved generator."""
import numpy as np
import pytest
from PIL import Image

from config import Config
from mnist_ds import to_unit_range
from tools import predict
from utils import load_generator


def test_notes_flag_dark_on_light_and_hole_less_inputs(digits):
    digit = to_unit_range(digits[0][:1])
    holed = digit.copy()
    holed[:, 8:20, 8:20] = 0.0                                    # a 12x12 mid-grey hole
    inverted = -holed                                            # dark strokes on a light page
    found = predict.unusual_inputs(np.concatenate([holed, inverted, digit]), task="inpaint")
    assert found == {"dark_on_light": [1], "no_hole": [2]}
    assert predict.unusual_inputs(digit, task="denoise") == {"dark_on_light": [], "no_hole": []}
    assert predict.unusual_inputs(-digit, task=None)["dark_on_light"] == []  # folder runs: any picture


def test_a_note_names_inputs_whose_aspect_ratio_changes(tmp_path, capsys):
    for name, size in (("square.png", (40, 40)), ("wide.png", (60, 40))):
        Image.fromarray(np.zeros(size[::-1], np.uint8)).save(tmp_path / name)
    files = [str(tmp_path / "square.png"), str(tmp_path / "wide.png")]
    predict.check_inputs(files, (28, 28, 1), load_size=286)
    assert "wide.png (60x40) will be resized to the generator's 28x28" in capsys.readouterr().out
    predict.check_inputs(files[:1], (28, 28, 1), load_size=286)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("content, what", [
    (b"", "an empty file"),
    (b"epochs: 15\n", "a text file"),
    (b"\x89HDF\r\n\x1a\n" + bytes(100), "an HDF5 file (a checkpoint"),
    (b"PK\x03\x04" + bytes(50), "damaged or truncated"),
])
def test_a_file_that_is_no_generator_is_refused_in_one_line(tmp_path, content, what):
    path = tmp_path / "generator.keras"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="is not a saved Keras model") as error:
        load_generator(str(path))
    assert what in str(error.value) and "\n" not in str(error.value)


def test_a_keras_model_that_is_no_image_generator_is_refused_in_one_line(tmp_path):
    import keras
    path = str(tmp_path / "classifier.keras")
    keras.Sequential([keras.Input((10,)), keras.layers.Dense(3)]).save(path)
    with pytest.raises(ValueError, match="is a Keras model but not an image generator") as error:
        load_generator(path)
    assert "(None, 10)" in str(error.value) and "\n" not in str(error.value)


@pytest.fixture(scope="module")
def inpainting_run(tmp_path_factory):
    """A run folder of a 28x28 inpainting U-Net that pastes the known pixels back (keep_known), with
    its output bias set so that it draws near-white everywhere (an untrained net draws grey, the
    hole's own colour), and its config.json."""
    import json

    from config import RunFiles
    from nets import unet
    from utils import save_model
    folder = tmp_path_factory.mktemp("inpaint_run")
    generator = unet((28, 28, 1), filters=4, max_filters=8, keep_known=True)
    last = [layer for layer in generator.layers if layer.weights][-1]  # the output conv, before tanh
    last.bias.assign(np.full(last.bias.shape, 3.0, np.float32))
    save_model(generator, RunFiles(str(folder)).generator)
    (folder / "config.json").write_text(json.dumps({"task": "inpaint", "batch_size": 64, "hole_min": 10}))
    return folder


def grey_holed_digit(digits, size=None):
    """A real digit as uint8 [28, 28] (or resized to size = (w, h)) with a 12x12 hole (scaled with
    it) painted in the README's grey 128, and the hole's mask."""
    image = Image.fromarray(digits[0][0])
    if size:
        image = image.resize(size, Image.BILINEAR)
    pixels = np.array(image)
    h, w = pixels.shape
    hole = np.zeros((h, w), bool)
    hole[h * 8 // 28:h * 20 // 28, w * 8 // 28:w * 20 // 28] = True
    pixels[hole] = 128
    return pixels, hole


def test_a_hole_painted_grey_into_a_png_comes_back_filled(inpainting_run, digits, tmp_path, capsys):
    pixels, hole = grey_holed_digit(digits)
    (tmp_path / "in").mkdir()
    Image.fromarray(pixels).save(tmp_path / "in" / "digit.png")
    predict.predict(str(inpainting_run), str(tmp_path / "in"), str(tmp_path / "out"))
    assert "no mid-grey hole" not in capsys.readouterr().out
    output = np.asarray(Image.open(tmp_path / "out" / "digit.png"))
    assert output.shape == (28, 28)
    assert (output[hole] > 200).all()                              # the generator's white, not the grey
    known = ~hole & (np.abs(pixels.astype(int) - 128) > 2)           # a stroke's rim in that grey is redrawn
    assert np.abs(output[known].astype(int) - pixels[known]).max() <= 1  # the rest pasted back


def test_a_hole_in_a_larger_drawing_survives_resizing(inpainting_run, digits, tmp_path, capsys):
    pixels, _ = grey_holed_digit(digits, size=(200, 120))           # resized to 28x28 by predict
    Image.fromarray(pixels).save(tmp_path / "drawing.png")
    predict.predict(str(inpainting_run), str(tmp_path / "drawing.png"), str(tmp_path / "out"))
    assert "no mid-grey hole" not in capsys.readouterr().out        # a shrunken hole is still a hole
    output = np.asarray(Image.open(tmp_path / "out" / "drawing.png"))
    small = predict.load_inputs([str(tmp_path / "drawing.png")], (28, 28, 1), task="inpaint")[0, ..., 0]
    assert (small == 0.0).sum() >= 16                                # the hole, exactly 0.0 after resizing
    assert (output[small == 0.0] > 200).all()                       # and filled


def test_a_digit_without_a_grey_hole_gets_the_note(inpainting_run, digits, tmp_path, capsys):
    Image.fromarray(digits[0][0]).save(tmp_path / "whole.png")
    predict.predict(str(inpainting_run), str(tmp_path / "whole.png"), str(tmp_path / "out"))
    assert "whole.png has no mid-grey hole" in capsys.readouterr().out


def test_the_demo_reads_an_uploaded_grey_hole_as_the_hole(digits, tmp_path):
    from tools.demo import from_canvas, read_upload
    pixels, hole = grey_holed_digit(digits)
    Image.fromarray(pixels).save(tmp_path / "upload.png")
    settings = Config(task="inpaint")
    canvas = read_upload(str(tmp_path / "upload.png"), (28, 28, 1), settings)
    assert (canvas[hole] == (255, 0, 0)).all()                     # shown as the red hole pen's paint
    src = from_canvas(canvas, (28, 28, 1), settings)[0, ..., 0]
    known = ~hole & (np.abs(pixels.astype(int) - 128) > 2)           # not the grey: not a hole
    assert (src[hole] == 0.0).all() and (src[known] != 0.0).all()
