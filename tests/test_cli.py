"""`python pix2pix.py` end to end on a tiny budget, its flags, and the saved generator."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def run(args, cwd=ROOT, **kwargs):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=300, **kwargs)


@pytest.fixture(scope="module")
def short_run(mnist_npz, tmp_path_factory):
    """One short epoch of the real CLI on 64 digits with small nets; returns its output folder."""
    out = tmp_path_factory.mktemp("run") / "out"
    result = run([os.path.join(ROOT, "pix2pix.py"), "--data", mnist_npz, "--out", str(out),
                  "--epochs", "2", "--limit", "64", "--batch-size", "32", "--val-size", "16",
                  "--gen-filters", "8", "--gen-max-filters", "16", "--disc-filters", "8", "--verbose", "1"])
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result.stdout


def test_cli_writes_every_output(short_run):
    out, stdout = short_run
    assert f"Writing outputs to {out}" in stdout
    assert "Epoch 2/2" in stdout and "d_loss" in stdout and "val_l1" in stdout  # Keras' progress bar
    for name in ("samples/epoch_001.png", "samples/epoch_002.png", "samples.gif", "losses.png",
                 "history.json", "config.json", "generator.keras", "pix2pix.weights.h5"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    history = json.loads((out / "history.json").read_text())
    for name in ("d_loss", "d_real", "d_fake", "g_gan_loss", "g_l1_loss", "val_l1"):
        assert len(history[name]) == 2 and all(np.isfinite(history[name]))
    assert json.loads((out / "config.json").read_text())["l1_weight"] == 1000.0
    assert not [p for p in out.rglob(".*")], "temporary files were left behind"


def test_sample_grid_and_gif_content(short_run):
    from PIL import Image
    out, _ = short_run
    grid = Image.open(out / "samples" / "epoch_002.png")
    assert grid.width > 3 * 2 * 28 * 4 and grid.height > 4 * 28 * 4  # 8 triples, 2 to a row, 4x
    gif = Image.open(out / "samples.gif")
    assert gif.n_frames == 2


def test_generator_loads_in_a_fresh_process(short_run, tmp_path):
    """Plain keras.models.load_model, in a process that never imports this project."""
    out, _ = short_run
    script = textwrap.dedent(f"""
        import sys, keras, numpy as np
        assert not any(m in sys.modules for m in ("pix2pix", "mnist_ds", "visual", "utils"))
        generator = keras.models.load_model({str(out / 'generator.keras')!r}, compile=False)
        x = np.random.default_rng(0).uniform(-1, 1, (3, 28, 28, 1)).astype("float32")
        y = np.asarray(generator(x))
        assert y.shape == (3, 28, 28, 1) and y.dtype == np.float32, (y.shape, y.dtype)
        assert y.min() >= -1 and y.max() <= 1
        print("ok", float(y.std()))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={**ENV, "PYTHONPATH": ""},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_help_explains_every_flag():
    result = run(["pix2pix.py", "--help"])
    assert result.returncode == 0
    for flag in ("--epochs", "--batch-size", "--lambda", "--data", "--out", "--seed"):
        assert flag in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--epochs", "-1"], "--epochs must be at least 1"),
    (["--lambda", "-5"], "--lambda must be >= 0"),
    (["--hole-max", "40"], "--hole-max <= 28"),
    (["--out", "pix2pix.py"], "is an existing file"),
    (["--data", "docs/mnist_inpaint.png"], "is one image; give the folder of image pairs"),
])
def test_nonsense_flags_are_refused(args, message):
    result = run(["pix2pix.py", *args])
    assert result.returncode == 2 and message in result.stderr


def test_import_has_no_side_effects(tmp_path):
    script = "import sys; sys.path.insert(0, %r); import pix2pix, mnist_ds, visual, utils" % ROOT
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=ENV, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and list(tmp_path.iterdir()) == []
