"""The generator and the judges that ship with the repository (models/): they load in plain Keras,
the generator has the architecture that today's default settings build (so a change of the
default nets cannot leave a stale file behind), and the commands that need a model use it when
--model is left out, saying so."""
import json
import os

import keras
import numpy as np
import pytest

from config import SHIPPED_RUN, TASKS, Config, RunFiles
from conftest import ROOT, run_here
from tools.evaluate import JUDGES, classifier_name

SHARED_T10K = os.path.join(os.path.dirname(ROOT), "shared", "data", "mnist-t10k")


def architecture(model):
    """(layer kinds, output shapes, weight shapes) of a Keras model: what two nets must share."""
    return ([type(layer).__name__ for layer in model.layers], [tuple(layer.output.shape) for layer in model.layers],
            [tuple(w.shape) for w in model.weights])


def test_the_shipped_generator_is_what_the_default_settings_build():
    from pix2pix import build_model
    shipped = keras.models.load_model(RunFiles(SHIPPED_RUN).generator, compile=False)   # plain Keras
    default = build_model(Config.mnist()).output_generator
    assert architecture(shipped) == architecture(default), (
        "models/mnist_inpaint/generator.keras is not what Config.mnist() builds: make it again with "
        "`python pix2pix.py --out models/mnist_inpaint` (README: How well it works)")
    cfg = Config.from_run(SHIPPED_RUN)
    assert cfg.kind == "mnist" and cfg.task == "inpaint" and cfg.epochs == Config.mnist().epochs
    digits = np.zeros((2, 28, 28, 1), np.float32) - 1.0
    digits[:, 8:20, 8:20] = 0.0                                     # a hole in a blank page
    out = np.asarray(shipped(digits, training=False))
    assert np.all(out[:, :8] == -1.0) and np.abs(out).max() <= 1.0  # the known pixels pasted back


def test_every_judge_ships_and_reads_digits():
    names = [classifier_name(), classifier_name(fashion=True), classifier_name(fashion=True, task="edges2fashion")]
    names += [classifier_name(task=task) for task in TASKS if task != "edges2fashion"]
    for name in names:
        judge = keras.models.load_model(os.path.join(JUDGES, name))
        assert judge.input_shape == (None, 28, 28, 1) and judge.output_shape[-1] in (4, 10), name


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(SHARED_T10K), reason="the shared MNIST test set is not beside the checkout")
def test_evaluate_without_model_scores_the_shipped_generator(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)                                     # its scores go to runs/, not into models/
    code, _ = run_here(["evaluate", "--data", SHARED_T10K, "--limit", "300"])
    out = capsys.readouterr().out
    assert code == 0 and "the shipped generator of the default run" in out and "possible" not in out
    assert "ownloading" not in out                                  # the data and the judges were given
    scores = json.loads((tmp_path / "runs" / "mnist_inpaint" / "scores.json").read_text())
    assert scores["acc_real"] > scores["acc_generated"] > scores["acc_input"] and 0 < scores["gap_closed"] < 1
    assert "closes" in out and f"{scores['gap_closed']:.0%} of the gap" in out
    assert not [p for p in os.listdir(SHIPPED_RUN) if p not in ("generator.keras", "config.json")]
