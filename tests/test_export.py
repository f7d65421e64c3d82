"""export: each format, reloaded by its own runtime, gives predict.translate's output, in the
policy baked in; nothing is overwritten; a missing converter is named in one line."""
import json
import os

import numpy as np
import pytest

from config import RunFiles
from tools import cli, export
from tools.predict import translate

pytestmark = pytest.mark.slow  # the learner's subset leaves it out: -m "not slow"

TOLERANCE = 1e-4  # float32 kernels of three runtimes; the outputs lie in [-1, 1]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A tiny RGB generator without dropout (so paper mode is deterministic too), its BatchNorm
    averages moved away from 0 and 1 so eval and paper modes differ, and a batch-4 config.json."""
    from nets import unet
    folder = tmp_path_factory.mktemp("run")
    generator = unet((32, 32, 3), filters=4, max_filters=8, dropout=0.0)
    for variable in generator.non_trainable_variables:
        variable.assign(variable + np.random.default_rng(0).uniform(0.1, 0.5, variable.shape).astype("float32"))
    generator.save(RunFiles(str(folder)).generator)
    (folder / "config.json").write_text(json.dumps({"task": None, "batch_size": 4, "direction": "AtoB"}))
    return folder, generator


def run_export(path, fmt, src):
    """The exported model's output for `src` (float32 [n, h, w, c]), run by the format's own runtime."""
    if fmt == "saved_model":
        import tensorflow as tf
        loaded = tf.saved_model.load(path)
        return loaded.serve(tf.constant(src)).numpy()
    if fmt == "tflite":
        import tensorflow as tf
        interpreter = tf.lite.Interpreter(model_path=path)
        (source,), (fake,) = interpreter.get_input_details(), interpreter.get_output_details()
        interpreter.resize_tensor_input(source["index"], src.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(source["index"], src)
        interpreter.invoke()
        return interpreter.get_tensor(fake["index"])
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(path)
    return session.run(None, {session.get_inputs()[0].name: src})[0]


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
@pytest.mark.parametrize("fmt, mode", [("saved_model", "paper"), ("tflite", "eval"), ("onnx", "eval")])
def test_the_export_gives_predicts_output(run_folder, tmp_path, fmt, mode):
    if fmt == "onnx":
        pytest.importorskip("tf2onnx")
    folder, generator = run_folder
    path = export.export(str(folder), fmt, str(tmp_path / f"generator.{fmt}"), mode)
    src = np.random.default_rng(1).uniform(-1, 1, (3, 32, 32, 3)).astype("float32")
    want = translate(generator, src, batch_size=3, mode=mode)       # paper: BatchNorm on the batch of 3
    assert np.abs(run_export(path, fmt, src) - want).max() < TOLERANCE
    other = translate(generator, src, batch_size=3, mode="paper" if mode == "eval" else "eval")
    assert np.abs(other - want).max() > 100 * TOLERANCE              # the policies differ: the test can tell
    notes = json.loads(open(path + ".json").read())
    assert notes["mode"] == mode and notes["input"]["shape"] == ["n", 32, 32, 3] and notes["format"] == fmt


def test_paper_mode_keeps_dropout_on():
    from nets import unet
    generator = export.paper_mode(unet((16, 16, 1), filters=4, max_filters=8))
    src = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 1)).astype("float32")
    assert np.abs(np.asarray(generator(src)) - np.asarray(generator(src))).max() > 1e-6  # two draws differ


def test_export_never_overwrites_and_names_a_missing_converter(run_folder, tmp_path, monkeypatch):
    folder, _ = run_folder
    cli.main(["export", "--model", str(folder), "--format", "saved_model", "--mode", "eval"])
    written = folder / export.DEFAULT_NAMES["saved_model"]
    assert (written / "saved_model.pb").is_file() and (folder / f"{written.name}.json").is_file()
    before = sorted(os.listdir(written))
    with pytest.raises(SystemExit, match="exists; export never overwrites"):
        cli.main(["export", "--model", str(folder), "--format", "saved_model"])
    assert sorted(os.listdir(written)) == before
    assert not [name for name in os.listdir(folder) if name.startswith(".")]     # no temporary left behind
    monkeypatch.setattr(export.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit) as stop:
        cli.main(["export", "--model", str(folder), "--format", "onnx", "--output", str(tmp_path / "g.onnx")])
    assert "needs tf2onnx and onnx" in str(stop.value.code) and "requirements-export.txt" in str(stop.value.code)
