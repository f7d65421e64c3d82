"""`python pix2pix.py ablation` and `python pix2pix.py evaluate`, end to end on a tiny budget."""
import json
import os

import pytest
from PIL import Image

from tools import ablation, cli, evaluate

pytestmark = pytest.mark.slow  # the learner's subset leaves it out: -m "not slow"

TINY = ["--epochs", "1", "--limit", "64", "--batch-size", "32", "--val-size", "16", "--gen-filters", "4",
        "--gen-max-filters", "8", "--disc-filters", "4", "--verbose", "0"]


@pytest.fixture
def quick_classifier(monkeypatch):
    """An untrained digit classifier instead of the cached one: these tests check the plumbing."""
    classifier = evaluate.digit_classifier()
    for module in (evaluate, ablation):
        monkeypatch.setattr(module, "load_or_train_classifier", lambda *args, **kwargs: classifier)


def test_ablation_trains_every_variant_and_writes_table_and_picture(mnist_npz, tmp_path, quick_classifier,
                                                                   capsys):
    out = tmp_path / "ablation"
    args = ["ablation", *TINY, "--data", mnist_npz, "--test-data", mnist_npz, "--test-limit", "40", "--out", str(out)]
    cli.main(args)
    for variant in ("l1", "gan", "cgan", "l1_gan", "l1_cgan"):
        config = json.loads((out / variant / "config.json").read_text())
        assert config["loss"] == variant.replace("_", "+") and config["epochs"] == 1
        assert (out / variant / "generator.keras").is_file()
    table = (out / "ablation.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["loss", "l1", "gan", "cgan", "l1+gan", "l1+cgan"]
    assert "40 MNIST test digits" in table
    picture = Image.open(out / "ablation.png")
    assert picture.width > 7 * 28 * 3 and picture.height > 8 * 28 * 3  # 7 columns, 8 digits, 3x

    weights = (out / "l1_cgan" / "pix2pix.weights.h5").stat().st_mtime_ns
    capsys.readouterr()
    cli.main(args)  # again: every variant is done, only the scoring runs
    assert capsys.readouterr().out.count("nothing to do") == 5
    assert (out / "l1_cgan" / "pix2pix.weights.h5").stat().st_mtime_ns == weights


def test_evaluate_command_prints_and_writes_scores(mnist_npz, tmp_path, quick_classifier, capsys):
    out = tmp_path / "run"
    cli.main([*TINY, "--data", mnist_npz, "--out", str(out)])
    cli.main(["evaluate", "--model", str(out / "generator.keras"), "--data", mnist_npz, "--limit", "30"])
    scores = json.loads((out / "scores.json").read_text())
    assert scores["digits"] == 30 and 0 <= scores["l1_region"] <= 2
    assert "acc" in capsys.readouterr().out


@pytest.mark.skipif(not os.path.isdir(__import__("mnist_ds").FASHION_DEBIAN),
                    reason="needs Debian's dataset-fashion-mnist")
def test_edges2fashion_trains_and_evaluates_on_fashion_test_items(tmp_path, quick_classifier, capsys):
    out = tmp_path / "fashion"
    cli.main(["--task", "edges2fashion", *TINY, "--out", str(out)])
    assert json.loads((out / "config.json").read_text())["task"] == "edges2fashion"
    assert "Fashion-MNIST: 24,000 shoes and bags" in capsys.readouterr().out
    cli.main(["evaluate", "--model", str(out / "generator.keras"), "--limit", "30"])
    printed = capsys.readouterr().out
    assert "Fashion-MNIST: 4,000 shoes and bags" in printed and "30 held-out items, task edges2fashion" in printed
    assert json.loads((out / "scores.json").read_text())["task"] == "edges2fashion"


def test_evaluate_offline_without_test_digits_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    import keras
    __import__("nets").unet((28, 28, 1), filters=4, max_filters=8).save(tmp_path / "generator.keras")
    monkeypatch.delenv("MNIST_PATH", raising=False)

    def offline():
        raise OSError("no network")
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    import mnist_ds
    mnist_ds.keras_mnist.cache_clear()  # Keras is tried once per process: here, under the patch
    with pytest.raises(SystemExit) as done:
        cli.main(["evaluate", "--model", str(tmp_path / "generator.keras")])
    mnist_ds.keras_mnist.cache_clear()
    assert str(done.value).startswith("pix2pix.py evaluate: error: MNIST test digits need")
    assert "--data" in str(done.value)
