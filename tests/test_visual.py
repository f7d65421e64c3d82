"""Pictures and atomic saving."""
import json

import numpy as np
import pytest
from PIL import Image

import visual
from tools.callbacks import TrainingHealth
from utils import atomic_path, remove_partial_files, write_json
from visual import HistoryRecorder, plot_history, sample_grid, save_gif, save_image, to_uint8


def test_to_uint8_maps_the_unit_range():
    np.testing.assert_array_equal(to_uint8(np.array([-1.0, 0.0, 1.0, 7.0])), [0, 128, 255, 255])


def test_sample_grid_places_input_generated_real():
    src, fake, target = (np.full((3, 4, 4, 1), v, np.float32) for v in (-1.0, 0.0, 1.0))
    grid = sample_grid(src, fake, target, pairs_per_row=2, scale=2, gap=1)
    assert grid.dtype == np.uint8 and grid.shape[-1] == 1
    assert grid[1, 1, 0] == 0          # top-left: input panel
    assert grid[1, 1 + 9, 0] == 128    # second panel: generated
    assert grid[1, 1 + 18, 0] == 255   # third panel: real


def test_save_image_and_gif(tmp_path):
    frames = []
    for i in range(3):
        path = tmp_path / f"f{i}.png"
        save_image(np.full((8, 8), 60 * i, np.uint8), str(path), title=f"frame {i}")
        frames.append(str(path))
    save_gif(frames, str(tmp_path / "a.gif"))
    gif = Image.open(tmp_path / "a.gif")
    assert gif.n_frames == 3 and gif.size == Image.open(frames[0]).size


def test_plot_history_writes_png(tmp_path):
    plot_history({"d_loss": [0.7, 0.5], "g_l1_loss": [0.3, 0.2], "val_l1": [0.4, 0.3]}, str(tmp_path / "l.png"))
    assert Image.open(tmp_path / "l.png").size[0] > 100


def test_history_plot_draws_after_the_first_epoch_every_fifth_and_at_the_end(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(visual, "plot_history", lambda history, path: drawn.append(len(history["d_loss"])))
    history = {"d_loss": [0.9, 0.8]}  # a resumed run's first two epochs
    plot = HistoryRecorder(str(tmp_path / "losses.png"), str(tmp_path / "history.json"), history)
    for epoch in range(2, 8):
        plot.on_epoch_end(epoch, {"d_loss": 0.5})
        assert len(json.loads((tmp_path / "history.json").read_text())["d_loss"]) == epoch + 1  # every epoch
    plot.on_train_end()
    plot.on_train_end()  # nothing new: not drawn again
    assert drawn == [3, 5, 8]


def test_atomic_path_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "history.json"
    write_json({"epoch": 1}, str(path))
    with pytest.raises(RuntimeError):
        with atomic_path(str(path)) as tmp:
            with open(tmp, "w") as f:
                f.write('{"epoch": 2, "trunc')
            raise RuntimeError("killed mid-save")
    assert path.read_text().startswith('{\n  "epoch": 1')
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]  # no temporary left


def test_remove_partial_files_keeps_real_files(tmp_path):
    (tmp_path / "samples").mkdir()
    for name in ("generator.keras", ".generator.keras.x1.partial.keras", "samples/.epoch_001.png.y.partial.png",
                 "samples/epoch_001.png"):
        (tmp_path / name).write_text("x")
    remove_partial_files(str(tmp_path))
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "generator.keras", "samples/epoch_001.png"]


class _Model:
    """Stands in for a Pix2Pix: only .output_generator is used by TrainingHealth."""
    def __init__(self, generator):
        self.output_generator = generator


def test_training_health_warns_once_when_d_wins(capsys):
    src = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
    health = TrainingHealth(src, patience=3)
    health.set_model(_Model(lambda x, training=False: x))  # an identity G: depends on its input
    for epoch, (d_loss, g_gan) in enumerate([(0.5, 1.0), (0.04, 2.0), (0.03, 3.0), (0.02, 4.0), (0.01, 5.0)]):
        health.on_epoch_end(epoch, {"d_loss": d_loss, "g_gan_loss": g_gan})
    out = capsys.readouterr().out
    assert out.count("discriminator has won outright") == 1 and "depend on its input" not in out


def test_training_health_quiet_when_healthy_or_without_d(capsys):
    src = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
    health = TrainingHealth(src, patience=2)
    health.set_model(_Model(lambda x, training=False: -x))
    for epoch in range(4):
        health.on_epoch_end(epoch, {"d_loss": 0.6, "g_gan_loss": 1.0 + epoch})  # D does not win
        health.on_epoch_end(epoch, {"d_loss": 0.0, "g_gan_loss": 0.0})          # the "l1" loss: no D
    assert capsys.readouterr().out == ""


def test_training_health_warns_when_outputs_ignore_the_input(capsys):
    src = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
    health = TrainingHealth(src, min_steps=3)
    health.set_model(_Model(lambda x, training=False: np.zeros_like(x) + 0.3))  # one answer for all
    for epoch in range(3):
        health.on_train_batch_end(0)
        health.on_epoch_end(epoch, {"d_loss": 0.6, "g_gan_loss": 1.0})
        if epoch == 1:  # 2 steps: too early to judge a fresh generator
            assert "barely depend" not in capsys.readouterr().out
    assert capsys.readouterr().out.count("barely depend on its input") == 1
