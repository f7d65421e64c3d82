"""Take a trained generator out of Python's Keras: a TensorFlow SavedModel, a TFLite file, or ONNX.

    python pix2pix.py export --model runs/facades --format tflite      # -> runs/facades/generator.tflite

Keras 3's `Model.export` writes all three (format "tf_saved_model", "litert", "onnx"; ONNX needs
tf2onnx and onnx: requirements-export.txt). The export takes float32 [n, h, w, c] in [-1, 1] at
the generator's training size and returns its output in [-1, 1], one endpoint "serve".

The inference policy (predict's --mode) is baked in: "eval" exports the generator as Keras runs it
at inference (dropout off, BatchNorm's moving averages); "paper" exports the nets as they run in
training, the paper's test time: `paper_mode` swaps each BatchNormalization for BatchStatistics
(normalise with the statistics of the batch the caller passes, no moving averages updated) and
each Dropout for AlwaysDropout. A json beside the export (PATH.json) states the policy, the
input and output, and how to run it.
"""
import importlib.util
import json
import os
import shutil
import tempfile
import warnings

import keras
import tensorflow as tf

from config import Config, RunFiles
from tools.predict import inference_mode
from utils import atomic_path, load_generator, write_json

KERAS_FORMATS = {"saved_model": "tf_saved_model", "tflite": "litert", "onnx": "onnx"}  # Model.export's names
DEFAULT_NAMES = {"saved_model": "generator_saved_model", "tflite": "generator.tflite", "onnx": "generator.onnx"}
NEEDS = {"onnx": ("tf2onnx", "onnx")}  # packages a format needs beyond TensorFlow
POLICIES = {"eval": "eval: dropout off, BatchNorm normalises with its moving averages; deterministic",
            "paper": "paper: as in training (the paper's test time): dropout on (rate of each Dropout), BatchNorm "
                     "normalises with the mean and variance of the batch passed in; moving averages unused"}
RUNTIMES = {"saved_model": "loaded = tf.saved_model.load(PATH); fake = loaded.serve(tf.constant(src)).numpy()",
            "tflite": "i = tf.lite.Interpreter(model_path=PATH); into, out = i.get_input_details()[0]['index'], "
                      "i.get_output_details()[0]['index']; i.resize_tensor_input(into, src.shape); "
                      "i.allocate_tensors(); i.set_tensor(into, src); i.invoke(); fake = i.get_tensor(out)",
            "onnx": "session = onnxruntime.InferenceSession(PATH); "
                    "fake = session.run(None, {session.get_inputs()[0].name: src})[0]"}


class BatchStatistics(keras.layers.Layer):
    """BatchNormalization as it runs in training, minus the updates: normalises each channel with
    the mean and variance of the batch (over n, h, w), then scales by gamma and shifts by beta,
    constants taken from `batch_norm`. Its training-time output, as a pure function for export."""

    def __init__(self, batch_norm, **kwargs):
        super().__init__(name=batch_norm.name, **kwargs)
        self.epsilon, self.axis = batch_norm.epsilon, batch_norm.axis
        self.gamma = batch_norm.gamma.numpy() if batch_norm.scale else None
        self.beta = batch_norm.beta.numpy() if batch_norm.center else None

    def call(self, x, mask=None):  # mask: recorded by the BatchNormalization node it replaces; unused
        x32 = keras.ops.cast(x, "float32")  # statistics in float32, as Keras' BatchNormalization
        axes = [i for i in range(len(x.shape)) if i != self.axis % len(x.shape)]
        mean, variance = keras.ops.moments(x32, axes=axes)
        out = keras.ops.batch_normalization(x32, mean, variance, axis=self.axis, offset=self.beta,
                                            scale=self.gamma, epsilon=self.epsilon)
        return keras.ops.cast(out, x.dtype)


class AlwaysDropout(keras.layers.Layer):
    """Dropout that is on at inference too (the paper's noise at test time): each value is zeroed
    with probability `rate`, the rest scaled by 1 / (1 - rate)."""

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, x, training=None):  # on whatever `training` says
        keep = tf.random.uniform(tf.shape(x)) >= self.rate
        return tf.where(keep, x / (1.0 - self.rate), tf.zeros_like(x))


def paper_mode(generator):
    """The generator as it runs in training, for export: a clone (same weights, shared) with every
    BatchNormalization a BatchStatistics and every Dropout an AlwaysDropout."""
    def swap(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            return BatchStatistics(layer)
        if isinstance(layer, keras.layers.Dropout):
            return AlwaysDropout(layer.rate, name=layer.name)
        return layer  # the same layer: its weights are shared, not copied
    return keras.models.clone_model(generator, clone_function=swap)


def check_format(fmt):
    """RuntimeError in one line naming what to install if the converter of `fmt` is missing."""
    missing = [name for name in NEEDS.get(fmt, ()) if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeError(f"--format {fmt} needs {' and '.join(missing)}, which are not installed: "
                           f"pip install -r requirements-export.txt")


def write_export(model, fmt, path):
    """model.export in `fmt` to `path`, through a temporary name beside it (a folder for
    saved_model), renamed into place when complete."""
    model(tf.zeros([1, *model.input_shape[1:]]))  # the ONNX export wants a model that has run once
    if fmt != "saved_model":
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.filterwarnings("ignore", "In the future `np.object`", FutureWarning)  # Keras' tf2onnx shim
            model.export(tmp, format=KERAS_FORMATS[fmt], verbose=False)
        return
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".partial",
                           dir=os.path.dirname(os.path.abspath(path)))
    try:
        model.export(tmp, format=KERAS_FORMATS[fmt], verbose=False)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's folder is private (0700); the export is not
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def describe(generator, fmt, mode, model_path, cfg):
    """The json written beside an export: what it is, its policy, its input and output."""
    shape = lambda s: ["n" if d is None else d for d in s]  # noqa: E731
    return {"format": fmt, "generator": os.path.abspath(model_path), "mode": mode, "policy": POLICIES[mode],
            "input": {"shape": shape(generator.input_shape), "dtype": "float32",
                      "range": "[-1, 1]: pixel / 127.5 - 1", "what": f"the {cfg.direction} "
                      f"input{' of task ' + cfg.task if cfg.task else ''}"},
            "output": {"shape": shape(generator.output_shape), "dtype": "float32",
                       "range": "[-1, 1]: (value + 1) * 127.5 is the pixel"},
            "run": RUNTIMES[fmt], "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}


def export(model_path, fmt, output=None, mode="auto"):
    """Export the generator in `model_path` (a generator.keras, or its run folder) as `fmt`
    (saved_model, tflite, onnx) to `output` (default: beside it, DEFAULT_NAMES), with the
    inference policy `mode` baked in; writes output + ".json" beside. Returns the path written.
    Refuses to overwrite anything."""
    model_path = RunFiles.generator_of(model_path)
    output = output or os.path.join(os.path.dirname(os.path.abspath(model_path)), DEFAULT_NAMES[fmt])
    for path in (output, output + ".json"):
        if os.path.exists(path):
            raise FileExistsError(f"--output {path} exists; export never overwrites: remove it or give another "
                                  f"--output")
    check_format(fmt)
    generator = load_generator(model_path)
    cfg = Config.from_run(model_path)
    mode = inference_mode(mode, cfg)
    write_export(paper_mode(generator) if mode == "paper" else generator, fmt, output)
    info = describe(generator, fmt, mode, model_path, cfg or Config())
    write_json(info, output + ".json")
    print(f"Exported {model_path} as {fmt} to {output}: {POLICIES[mode]}. Input float32 "
          f"{json.dumps(info['input']['shape'])} in [-1, 1], the training size; notes in {output}.json")
    return output
