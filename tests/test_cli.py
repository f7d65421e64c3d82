"""`python pix2pix.py` end to end on a tiny budget, its flags, and the saved generator."""
import json
import os

import numpy as np
import pytest

from conftest import ENV, ROOT, RUN_FILES, program, run_cli, run_here, run_python


@pytest.fixture(scope="module")
def short_run(mnist_npz, tmp_path_factory):
    """Two short epochs of the real CLI on 64 digits with small nets, with TensorFlow's log level
    left to the CLI, as a user runs it; returns its output folder, stdout and stderr."""
    out = tmp_path_factory.mktemp("run") / "out"
    user_env = {k: v for k, v in ENV.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = run_cli(["--data", mnist_npz, "--out", str(out), "--epochs", "2", "--limit", "64", "--batch-size", "16",
                      "--val-size", "16", "--gen-filters", "8", "--gen-max-filters", "16", "--disc-filters", "8",
                      "--verbose", "1"], env=user_env)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result.stdout, result.stderr


@pytest.mark.slow
def test_cli_writes_every_output(short_run):
    out, stdout, _ = short_run
    assert f"Writing outputs to {out}" in stdout
    assert "Epoch 2/2" in stdout and "d_loss" in stdout and "val_l1" in stdout  # Keras' progress bar
    for name in RUN_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    history = json.loads((out / "history.json").read_text())
    for name in ("d_loss", "d_real", "d_fake", "g_gan_loss", "g_l1_loss", "val_l1"):
        assert len(history[name]) == 2 and all(np.isfinite(history[name]))
    assert json.loads((out / "config.json").read_text())["l1_weight"] == 1000.0
    assert not [p for p in out.rglob(".*")], "temporary files were left behind"


@pytest.mark.slow
def test_sample_grid_and_gif_content(short_run):
    from PIL import Image
    out, _, _ = short_run
    grid = Image.open(out / "samples" / "epoch_002.png")
    assert grid.width > 3 * 2 * 28 * 4 and grid.height > 4 * 28 * 4  # 8 triples, 2 to a row, 4x
    gif = Image.open(out / "samples.gif")
    assert gif.n_frames == 2


@pytest.mark.slow
def test_generator_loads_in_a_fresh_process(short_run, tmp_path):
    """Plain keras.models.load_model, in a process that never imports this project."""
    out, _, _ = short_run
    result = run_python([program("load_generator.py"), str(out / "generator.keras"), "28", "28", "1"], cwd=tmp_path,
                        env={**ENV, "PYTHONPATH": ""}, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_help_explains_every_flag():
    result = run_cli(["--help"])
    assert result.returncode == 0
    for flag in ("--epochs", "--batch-size", "--lambda", "--data", "--out", "--seed"):
        assert flag in result.stdout


@pytest.mark.slow
def test_a_run_says_its_plan_and_time_and_prints_no_error_lines(short_run):
    _, stdout, stderr = short_run
    assert "Plan: 2 epochs of 4 steps = 8 steps of 16 images" in stdout
    assert "the remaining 1 epoch should take about" in stdout
    assert "E0000" not in stderr and "remapper" not in stderr, stderr  # cuInit, grappler's remapper


@pytest.mark.parametrize("args, message", [
    (["--epoch", "3"], "unrecognized arguments: --epoch"),  # no abbreviations: a typo is no flag
    (["--max-epoch-steps", "-1"], "--max-epoch-steps must be >= 0"),
    (["--epochs", "-1"], "--epochs must be at least 1"),
    (["--lambda", "-5"], "--lambda must be a finite number >= 0"),
    (["--lambda", "nan"], "--lambda must be a finite number >= 0, got nan"),
    (["--lr", "inf"], "need --lr > 0"),
    (["--seed", "-1"], "--seed must be between 0 and 2**32 - 1"),
    (["--disc-layers", "-1"], "--disc-layers must be between 1 and 8"),
    (["--verbose", "7"], "--verbose must be 0 (silent)"),
    (["--hole-max", "40"], "--hole-max <= 28"),
    (["--out", "pix2pix.py"], "is an existing file"),
    (["--data", "docs/mnist_inpaint.png"], "is one image; give the folder of image pairs"),
])
def test_nonsense_flags_are_refused(args, message):
    code, stderr = run_here(args)
    assert code == 2 and message in stderr


def test_a_refusal_ends_the_program_before_tensorflow_loads():
    result = run_cli(["--epochs", "-1", "--lambda", "-5"])  # a fresh process, as a user meets it
    assert result.returncode == 2 and result.stderr == "pix2pix.py: error: --epochs must be at least 1, got -1\n"
    typo = run_cli(["--epoch", "3"])                                  # argparse's own refusals: one line too
    assert typo.stderr == "pix2pix.py: error: unrecognized arguments: --epoch 3\n"
    assert "Traceback" not in result.stderr and "tensorflow" not in result.stderr.lower()


def test_evaluate_refuses_a_negative_limit_and_names_a_damaged_config(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "generator.keras").write_bytes(b"")
    code, stderr = run_here(["evaluate", "--model", str(run), "--limit", "-5"])
    assert code == 2 and "--limit must be >= 0" in stderr
    for damaged in ('{"task": "inpaint",', "[]"):
        (run / "config.json").write_text(damaged)
        code, stderr = run_here(["evaluate", "--model", str(run)])
        assert code == 2 and f"{run / 'config.json'} is not a run's settings" in stderr


@pytest.mark.slow
def test_import_has_no_side_effects(tmp_path):
    modules = sorted(name[:-3] for name in os.listdir(ROOT) if name.endswith(".py"))
    script = f"import sys; sys.path.insert(0, {ROOT!r}); import {', '.join(modules)}"
    result = run_python(["-c", script], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_folder_flags_given_for_mnist_get_a_note(capsys):
    from tools import cli
    cli.parse_args(["--crop-size", "64", "--no-flip"])
    assert "note: --crop-size, --no-flip apply to folders of images only" in capsys.readouterr().out
    cli.parse_args(["--epochs", "2"])
    assert capsys.readouterr().out == ""


def test_task_presets_reach_the_command_line():
    from tools import cli
    fashion, denoise, digits = (cli.parse_args(["--task", task]) for task in ("edges2fashion", "denoise", "inpaint"))
    assert (fashion.disc_layers, fashion.disc_filters, denoise.disc_layers, digits.disc_layers) == (2, 64, 2, 0)
    assert (fashion.disc_max_filters, digits.disc_max_filters) == (512, 128)
    assert cli.parse_args(["--task", "denoise", "--disc-layers", "3"]).disc_layers == 3  # a flag wins


def test_python_refuses_what_the_command_line_refuses_in_the_same_words(tmp_path):
    from config import Config
    from tools.training import train
    out = tmp_path / "run"
    with pytest.raises(ValueError) as refused:
        train(Config.mnist(hole_max=40, out=str(out)))             # checked before anything is read or written
    code, stderr = run_here(["--hole-max", "40", "--out", str(out)])
    assert "--hole-max <= 28" in str(refused.value) and str(refused.value) in stderr and code == 2
    assert not out.exists()
    with pytest.raises(ValueError) as refused:
        Config.mnist(epochs=0)                                       # a Config checks itself
    code, stderr = run_here(["--epochs", "0"])
    assert str(refused.value) == "--epochs must be at least 1, got 0" and str(refused.value) in stderr


def test_a_preset_can_set_a_switch(monkeypatch):
    """Switches (store_true) left off on the command line keep the preset's value: argparse sets only
    what was typed (argument_default=SUPPRESS)."""
    import config
    from tools import cli
    monkeypatch.setitem(config.TASK_PRESETS, "denoise", {**config.TASK_PRESETS["denoise"], "no_paste": True})
    assert cli.parse_args(["--task", "denoise"]).no_paste is True
    assert cli.parse_args(["--task", "inpaint"]).no_paste is False and cli.parse_args(["--no-paste"]).no_paste


def test_a_run_folder_reads_back_as_its_config(tmp_path):
    from config import Config
    assert Config.from_run(str(tmp_path)) is None                    # no config.json
    (tmp_path / "config.json").write_text(json.dumps({"task": "colorize", "crop_size": "32x64", "old_setting": 1}))
    cfg = Config.from_run(str(tmp_path / "generator.keras"))        # a run's file finds its folder
    assert (cfg.task, cfg.crop_size, cfg.load_size, cfg.kind, cfg.image_hw) == ("colorize", "32x64", 286, "photos",
                                                                                (32, 64))
    (tmp_path / "config.json").write_text(json.dumps({"task": "inpaint", "hole_min": 0}))
    with pytest.raises(ValueError, match="config.json is not a run's settings .*--hole-min"):
        Config.from_run(str(tmp_path))
