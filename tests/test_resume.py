"""Training that survives: resume after a kill, atomic saves, the NaN guard, determinism and
clear errors on bad input that leave existing files untouched."""
import hashlib
import os
import signal
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import utils
from conftest import ENV, ROOT, TINY_NETS, program, run_cli, run_here, run_python
from nets import patch_discriminator, unet
from pix2pix import Pix2Pix
from tools.callbacks import Checkpoint, StopOnNonFinite
from tools.checkpoint import read_progress
from tools.predict import translate
from utils import check_images

pytestmark = pytest.mark.slow  # the learner's subset leaves it out: -m "not slow"

TINY = ["--limit", "256", "--batch-size", "32", "--val-size", "16", *TINY_NETS, "--verbose", "2"]  # 8 steps/epoch


def args(out, *more, data):
    """The training flags of these tests: tiny nets on `data`, 8 steps per epoch, into `out`."""
    return ["--data", data, "--out", str(out), *TINY, *more]


def weights(path):
    """{dataset path: array} of every array in an .h5 file."""
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return found


def assert_same_weights(path_a, path_b):
    a, b = weights(path_a), weights(path_b)
    assert a.keys() == b.keys() and len(a) > 50
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def digest(folder):
    """{file: sha256} of every file under folder."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def uninterrupted(mnist_npz, tmp_path_factory):
    """A 2-epoch run that nothing interrupts, checkpointing every 3 steps."""
    out = tmp_path_factory.mktemp("straight") / "out"
    result = run_cli(args(out, "--epochs", "2", "--save-every", "3", data=mnist_npz))
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize("epochs_done, step", [(1, 3)])  # a save in the middle of the second epoch
def test_kill_right_after_a_save_then_resume_matches_uninterrupted(
        uninterrupted, mnist_npz, tmp_path, epochs_done, step):
    out = tmp_path / "out"
    flags = args(out, "--epochs", "2", "--save-every", "3", data=mnist_npz)
    if epochs_done:  # the first epoch runs in a process of its own, the kill falls in the second
        assert run_cli(args(out, "--epochs", "1", "--save-every", "3", data=mnist_npz)).returncode == 0
        flags += ["--resume"]
    killed = run_python([program("killer.py"), str(step), *flags])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    progress = read_progress(str(out / "pix2pix.weights.h5"))
    assert (progress["epoch"], progress["step"]) == (epochs_done, step)
    resumed = run_cli(args(out, "--epochs", "2", "--save-every", "3", "--resume", data=mnist_npz))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at epoch {epochs_done + 1}, step {step}" in resumed.stdout
    assert_same_weights(out / "pix2pix.weights.h5", uninterrupted / "pix2pix.weights.h5")
    history = (out / "history.json").read_text()
    assert history.count(",") == (uninterrupted / "history.json").read_text().count(",")  # 2 epochs logged


@pytest.mark.parametrize("delay", [1.2])  # benchmarks/fault_campaign.py kills at 20 moments
def test_sigkill_at_any_moment_then_resume_finishes(mnist_npz, tmp_path, delay, capsys):
    out = tmp_path / "out"
    command = [sys.executable, os.path.join(ROOT, "pix2pix.py"), *args(out, "--epochs", "3", "--save-every", "2",
                                                                       data=mnist_npz)]
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = out / "pix2pix.weights.h5"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(delay)  # somewhere in training, maybe in the middle of a save
    proc.kill()
    proc.wait()
    progress = read_progress(str(checkpoint))  # the checkpoint left behind is whole
    assert progress["epoch"] * 8 + progress["step"] >= 2
    resumed = run_cli(args(out, "--epochs", "3", "--save-every", "2", "--resume", data=mnist_npz))
    assert resumed.returncode == 0, resumed.stderr
    assert read_progress(str(checkpoint))["epoch"] == 3
    assert len(read_progress(str(checkpoint))["history"]["val_l1"]) == 3
    keras.models.load_model(out / "generator.keras", compile=False)
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png", "epoch_003.png"]
    assert not [p for p in out.rglob(".*")], "temporary files left behind"
    code, _ = run_here(args(out, "--epochs", "3", "--save-every", "2", "--resume", data=mnist_npz))
    assert code == 0 and "already finished its 3 epochs" in capsys.readouterr().out


def test_resume_refusals(uninterrupted, mnist_npz, tmp_path, capsys):
    code, _ = run_here(args(tmp_path / "empty", "--resume", "--epochs", "1", data=mnist_npz))  # no save yet
    printed = capsys.readouterr().out
    assert code == 0 and "--resume: no checkpoint in" in printed and "starting the run from the beginning" in printed
    assert read_progress(str(tmp_path / "empty" / "pix2pix.weights.h5"))["epoch"] == 1
    before = digest(uninterrupted)
    code, message = run_here(args(uninterrupted, "--epochs", "3", data=mnist_npz))
    assert code == 1 and "holds another run's checkpoint" in message
    code, message = run_here(args(uninterrupted, "--epochs", "3", "--resume", "--lambda", "5", data=mnist_npz))
    assert code == 1 and "--lambda 1000.0 -> 5.0" in message
    assert digest(uninterrupted) == before  # nothing was overwritten


def test_deterministic_runs_are_bit_identical(mnist_npz, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert run_cli(args(out, "--epochs", "1", "--deterministic", data=mnist_npz)).returncode == 0
    assert_same_weights(*(out / "pix2pix.weights.h5" for out in outs))


def test_interrupted_save_leaves_old_file_loadable(tmp_path, monkeypatch):
    path = tmp_path / "generator.keras"
    old = unet((16, 16, 1), filters=4, max_filters=8)
    utils.save_model(old, str(path))
    before = path.read_bytes()

    def failing_rename(src, dst):
        raise OSError("disk pulled out during rename")
    monkeypatch.setattr(utils.os, "replace", failing_rename)
    with pytest.raises(OSError, match="disk pulled out"):
        utils.save_model(unet((16, 16, 1), filters=8, max_filters=8), str(path))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["generator.keras"]
    loaded = keras.models.load_model(path, compile=False)
    np.testing.assert_array_equal(loaded.get_weights()[0], old.get_weights()[0])


def test_nan_stops_training_at_the_step_and_keeps_last_good_checkpoint(tmp_path):
    model = Pix2Pix(generator=unet((16, 16, 1), filters=4, max_filters=8),
                    discriminator=patch_discriminator((16, 16, 1), filters=4))
    model.compile()
    src = np.random.default_rng(0).uniform(-1, 1, (12, 16, 16, 1)).astype(np.float32)
    target = src.copy()
    target[8] = np.nan  # the 5th batch of 2 holds a NaN
    pairs = tf.data.Dataset.from_tensor_slices((src, target)).batch(2)
    path = str(tmp_path / "pix2pix.weights.h5")
    callbacks = [StopOnNonFinite(steps_per_epoch=6), Checkpoint(path, {}, {}, every_steps=2)]
    with pytest.raises(FloatingPointError, match="epoch 1, step 5/6"):
        keras.Model.fit(model, pairs, epochs=1, callbacks=callbacks, verbose=0, shuffle=False)  # skips the NaN check
    progress = read_progress(path)
    assert (progress["epoch"], progress["step"]) == (0, 4)  # saved before the NaN, never after
    assert all(np.all(np.isfinite(w)) for w in weights(path).values() if w.dtype.kind == "f")


@pytest.mark.parametrize("src, message", [
    (np.zeros((2, 16, 16, 1), np.uint8), "floats in \\[-1, 1\\], got dtype uint8"),
    (np.zeros((16, 16, 1), np.float32), "rank 4"),
    (np.full((2, 16, 16, 1), 3.0, np.float32), "must lie in \\[-1, 1\\], got values from 3.0"),
    (np.zeros((2, 16, 16, 3), np.float32), "are \\[16, 16, 3\\].*takes \\[16, 16, 1\\]"),
])
def test_python_api_rejects_bad_arrays(src, message):
    generator = unet((16, 16, 1), filters=4, max_filters=8)
    with pytest.raises(ValueError, match=message):
        translate(generator, src)
    model = Pix2Pix(generator=generator, discriminator=patch_discriminator((16, 16, 1), filters=4))
    model.compile()
    with pytest.raises(ValueError, match=message):
        model.fit(src, np.zeros((2, 16, 16, 1), np.float32), epochs=1, verbose=0)


def test_fit_rejects_a_dataset_of_the_wrong_size():
    model = Pix2Pix(generator=unet((16, 16, 1), filters=4, max_filters=8),
                    discriminator=patch_discriminator((16, 16, 1), filters=4))
    model.compile()
    pairs = tf.data.Dataset.from_tensor_slices((tf.zeros((4, 28, 28, 1)), tf.zeros((4, 28, 28, 1)))).batch(2)
    with pytest.raises(ValueError, match="nets take float batches \\[n, 16, 16, 1\\]"):
        model.fit(pairs, epochs=1, verbose=0)


def test_translate_runs_in_inference_mode():
    generator = unet((16, 16, 1), filters=4, max_filters=8)
    moving_mean = [w.numpy() for w in generator.non_trainable_weights]
    images = np.random.default_rng(1).uniform(-1, 1, (5, 16, 16, 1)).astype(np.float32)
    first, second = translate(generator, images, batch_size=2), translate(generator, images)
    assert first.shape == (5, 16, 16, 1) and np.allclose(first, second, atol=1e-6)  # no dropout noise
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(moving_mean, generator.non_trainable_weights))
    assert check_images(images).dtype == np.float32


def test_paper_mode_uses_batch_statistics_and_dropout_but_keeps_moving_statistics():
    generator = unet((16, 16, 1), filters=4, max_filters=8)
    generator.layers[-1].set_weights([w + 0.1 for w in generator.layers[-1].get_weights()])
    for layer in generator.layers:  # moving averages far from any batch's statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(layer.moving_mean + 3.0)
    saved = {v.path: v.numpy() for v in generator.non_trainable_variables if "moving" in v.path}
    images = np.random.default_rng(1).uniform(-1, 1, (4, 16, 16, 1)).astype(np.float32)
    paper = [translate(generator, images, batch_size=1, mode="paper") for _ in range(2)]
    evaluation = translate(generator, images, mode="eval")
    assert not np.allclose(paper[0], paper[1], atol=1e-4)         # dropout stays on
    assert not np.allclose(paper[0], evaluation, atol=1e-2)       # batch statistics, not moving ones
    assert all(np.array_equal(saved[v.path], v.numpy()) for v in generator.non_trainable_variables
               if "moving" in v.path)                             # never updated
    assert len(saved) > 0
    with pytest.raises(ValueError, match="mode must be one of eval, paper"):
        translate(generator, images, mode="train")


@pytest.mark.parametrize("make_bad, message, code", [
    (lambda tmp: str(tmp / "missing.npz"), "--data .*missing.npz does not exist", 2),  # a usage error
    (lambda tmp: (tmp / "bad.npz").write_bytes(b"PK\x03\x04 truncated zip") and str(tmp / "bad.npz"),
     "not a readable .npz|not an .npz", 1),
    (lambda tmp: np.savez(tmp / "empty.npz", x_train=np.zeros((0, 28, 28), np.uint8),
                          y_train=np.zeros(0)) or str(tmp / "empty.npz"), "holds no images", 1),
])
def test_bad_data_gives_message_and_writes_nothing(tmp_path, make_bad, message, code):
    data = make_bad(tmp_path)
    out = tmp_path / "out"
    exit_code, printed = run_here(args(out, "--epochs", "1", data=data))
    assert exit_code == code and "pix2pix.py: error:" in printed
    assert __import__("re").search(message, printed), printed
    assert not out.exists()


def test_batch_larger_than_data_and_unwritable_out(mnist_npz, tmp_path):
    code, message = run_here(args(tmp_path / "out", "--batch-size", "500", data=mnist_npz))
    assert code == 1 and "batch size 500 is larger than the 256 training images" in message
    (tmp_path / "file").write_text("mine")
    code, message = run_here(args(tmp_path / "file" / "sub", data=mnist_npz))
    assert code == 1 and "cannot write into --out" in message
    assert (tmp_path / "file").read_text() == "mine"


def test_a_full_disk_stops_the_run_in_one_line_and_loses_nothing(mnist_npz, tmp_path):
    out = tmp_path / "out"
    assert run_here(args(out, "--epochs", "1", data=mnist_npz))[0] == 0
    kept = {name: digest(out)[name] for name in ("generator.keras", "pix2pix.weights.h5", "samples/epoch_001.png")}
    limit = os.path.getsize(out / "generator.keras") // 2  # small files fit, the generator does not
    full = run_python([program("full_disk.py"), str(limit), *args(out, "--epochs", "2", "--resume", data=mnist_npz)])
    assert full.returncode == 1, full.stderr
    message = full.stderr.strip().splitlines()[-1]
    assert message.startswith("pix2pix.py: error: the disk is full: no room to write") and str(out) in message
    assert {name: digest(out)[name] for name in kept} == kept            # nothing saved before is lost
    assert not [p for p in out.rglob(".*")], "partial files left behind"
    keras.models.load_model(out / "generator.keras", compile=False)
    assert read_progress(str(out / "pix2pix.weights.h5"))["epoch"] == 1
    assert run_here(args(out, "--epochs", "2", "--resume", data=mnist_npz))[0] == 0  # space again: it carries on
    assert read_progress(str(out / "pix2pix.weights.h5"))["epoch"] == 2


def test_atomic_path_turns_a_full_disk_into_one_line_and_keeps_the_old_file(tmp_path):
    import errno
    path = tmp_path / "history.json"
    path.write_text("old")
    with pytest.raises(OSError, match="the disk is full: no room to write history.json") as error:
        with utils.atomic_path(str(path)) as tmp:
            open(tmp, "w").close()
            raise OSError(errno.ENOSPC, "No space left on device")
    assert "\n" not in str(error.value) and path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_or_ctrl_c_saves_at_the_step_and_resume_matches_uninterrupted(
        uninterrupted, mnist_npz, tmp_path, signum, code):
    out = tmp_path / "out"
    command = [sys.executable, os.path.join(ROOT, "pix2pix.py"), *args(out, "--epochs", "2", "--save-every", "3",
                                                                       data=mnist_npz)]
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "pix2pix.weights.h5").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signum)  # somewhere in training after its first save
    stdout, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == code, stderr
    assert "checkpoint saved in" in stdout and "--resume" in stdout.splitlines()[-1], stdout
    assert not (out / "pix2pix.lock").exists()
    resumed = run_cli(args(out, "--epochs", "2", "--save-every", "3", "--resume", data=mnist_npz))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(out / "pix2pix.weights.h5", uninterrupted / "pix2pix.weights.h5")


def test_a_damaged_checkpoint_falls_back_to_the_previous_one(mnist_npz, tmp_path, uninterrupted):
    out = tmp_path / "out"
    assert run_cli(args(out, "--epochs", "1", "--save-every", "3", data=mnist_npz)).returncode == 0
    assert read_progress(str(out / "pix2pix.prev.weights.h5"))["step"] == 6  # the save before the last
    checkpoint = out / "pix2pix.weights.h5"
    checkpoint.write_bytes(checkpoint.read_bytes()[:5000])  # truncated, as by a failing disk
    resumed = run_cli(args(out, "--epochs", "2", "--save-every", "3", "--resume", data=mnist_npz))
    assert resumed.returncode == 0, resumed.stderr
    assert "is not a readable pix2pix checkpoint" in resumed.stdout and "resuming from the previous" in resumed.stdout
    assert_same_weights(checkpoint, uninterrupted / "pix2pix.weights.h5")
    checkpoint.write_bytes(b"")  # no fallback without --resume
    code, message = run_here(args(out, "--epochs", "2", "--save-every", "3", data=mnist_npz))
    assert code == 1 and "not a readable" in message


def test_two_runs_in_one_folder_the_second_is_refused_and_a_stale_lock_is_taken_over(mnist_npz, tmp_path, capsys):
    import datetime
    import json
    import socket
    out = tmp_path / "out"
    out.mkdir()
    lock = out / "pix2pix.lock"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(1)
        started = datetime.datetime.now().isoformat(timespec="seconds")  # written after its process started
        lock.write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "started": started}))
        code, message = run_here(args(out, "--epochs", "1", data=mnist_npz))
        assert code == 1 and f"in use by another run: process {sleeper.pid}" in message
        assert f"started {started}" in message and f"delete {lock}" in message
        # the same process id, but the process started after the lock: an id reused (a reboot), not the run
        old = "2026-12-02T10:00:00"
        lock.write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "started": old}))
        code, _ = run_here(args(out, "--epochs", "1", data=mnist_npz))
        assert code == 0 and "taking over" in capsys.readouterr().out and not lock.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    lock.write_text("null")  # valid JSON, but no lock: unreadable, taken over
    code, _ = run_here(args(out, "--epochs", "2", "--resume", data=mnist_npz))
    assert code == 0 and "taking over" in capsys.readouterr().out and not lock.exists()


def test_a_full_disk_in_each_writer_leaves_the_earlier_file_whole(tmp_path):
    """Checkpoint, generator, sample grid, GIF, history and loss curves: each write on a full disk
    fails with the one-line error, and the file written before is unchanged; no partial files."""
    import json
    result = run_python([program("full_disk_writers.py"), str(tmp_path)], timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.split("RESULT")[-1])
    assert found.pop("partial") == []
    assert set(found) == {"checkpoint", "generator", "grid", "gif", "history", "curves"}
    for writer, outcome in found.items():
        assert outcome["error"] and outcome["error"].startswith("the disk is full: no room to write"), (writer, outcome)
        assert str(tmp_path) in outcome["error"] and "\n" not in outcome["error"], writer
        assert outcome["kept"], f"{writer}: the earlier file changed"
