"""predict's notes on inputs that will not look like the training inputs, and its one-line
refusal of files that are not a saved generator."""
import numpy as np
import pytest
from PIL import Image

import predict
from mnist_ds import to_unit_range
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
