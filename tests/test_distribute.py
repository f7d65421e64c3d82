"""Training under tf.distribute and in mixed precision: 2 replicas compute what 1 device computes,
two worker processes agree and only worker 0 writes, mixed precision (forced on a CPU) builds and
steps, and eager, tf.function and XLA steps give the same losses."""
import dataclasses
import json
import socket
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from config import Config
from conftest import ENV, TINY_NETS, program, run_python
from nets import patch_discriminator, unet
from pix2pix import Pix2Pix, build_model
from tools import cli, distribute
from tools.checkpoint import start_state
from tools.distribute import ReplicatedPix2Pix
from tools.training import train

pytestmark = pytest.mark.slow  # the learner's subset leaves it out: -m "not slow"

TINY = ["--limit", "32", "--batch-size", "16", "--val-size", "16", "--epochs", "1", *TINY_NETS,
        "--verbose", "2"]  # 2 steps of 8 images per worker

# Run in a fresh process: the CPU is split into 2 logical devices before TensorFlow starts.


def test_mirrored_two_cpu_replicas_match_one_device(tmp_path):
    proc = run_python([program("mirrored.py")], timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT")[-1])
    assert result["replicas"] == 2
    assert result["moved"] > 0.01 and result["diff"] < 1e-5, result  # same weights, BatchNorm stats included
    for name, values in result["one_logs"].items():  # the logs are global means, not one replica's
        assert result["two_logs"][name] == pytest.approx(values, rel=1e-5), name
    assert result["lso_w"] == [1.0, 1.0, 1.0] and result["lso_scale"] == 2.0 ** 14  # step skipped, scale halved
    assert result["mixed_opt"] == "LossScaleOptimizer" and result["synced"]
    assert len(result["mixed_logs"]) == 5 and all(np.isfinite(list(result["mixed_logs"].values())))




def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_agree_and_only_worker_0_writes(mnist_npz, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, program("worker.py"), str(tmp_path / f"weights{index}.npz"), "--strategy", "multiworker",
             "--data", mnist_npz, "--out", str(tmp_path / f"out{index}"), *TINY], env={**ENV, "TF_CONFIG": tf_config},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [proc.communicate(timeout=240)[0] for proc in procs]  # a hang fails, never blocks
    finally:
        for proc in procs:
            proc.kill()
    assert [proc.returncode for proc in procs] == [0, 0], "\n-----\n".join(o[-3000:] for o in outputs)
    assert "Writing outputs to" in outputs[0] and "This worker writes no outputs" in outputs[1]
    assert "2 replicas, 8 images each" in outputs[0] and "Done:" in outputs[0] and "Done:" not in outputs[1]
    logs = [next(line for line in o.splitlines() if line.startswith("2/2")) for o in outputs]
    assert logs[0].split("step - ")[1] == logs[1].split("step - ")[1]  # the same (global) means
    chief, worker = (np.load(tmp_path / f"weights{i}.npz") for i in range(2))
    assert len(chief.files) == len(worker.files) > 20
    for name in chief.files:
        np.testing.assert_allclose(chief[name], worker[name], rtol=1e-6, atol=1e-7, err_msg=name)
    out = tmp_path / "out0"
    for name in ("samples/epoch_001.png", "samples.gif", "losses.png", "history.json", "config.json",
                 "generator.keras", "pix2pix.weights.h5"):
        assert (out / name).is_file(), name
    saved = keras.models.load_model(out / "generator.keras", compile=False).get_weights()
    for i, array in enumerate(saved):  # the chief's file holds the final weights
        np.testing.assert_array_equal(array, chief[f"arr_{i}"])
    assert not (tmp_path / "out1").exists()  # worker 1 wrote nothing


@pytest.mark.parametrize("tf_config, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not usable"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "task index 3 but the cluster has 1"),
])
def test_multiworker_without_a_usable_tf_config_says_why(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        distribute.make_strategy("multiworker")


@pytest.fixture
def float32_afterwards():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="with a GPU fp16 is on")
def test_fp16_on_cpu_says_so_and_trains_in_float32(capsys):
    assert distribute.resolve_precision("fp16", gpus=[]) == "fp32"
    assert "--precision fp16 needs a GPU and none is visible: training continues in fp32" in capsys.readouterr().out
    assert cli.parse_args(["--mixed-precision"]).precision == "fp16"  # the old flag's name


@pytest.mark.parametrize("flags, gpus, expected", [
    ({"avx512f", "avx512_bf16"}, [], "bf16"), ({"amx_bf16"}, [], "bf16"), ({"avx512f", "avx2"}, [], "fp32"),
    (set(), [], "fp32")])
def test_auto_precision_follows_the_cpus_flags(flags, gpus, expected):
    assert distribute.resolve_precision("auto", gpus=gpus, flags=flags) == expected


def test_bf16_trains_in_bfloat16_with_float32_weights_saves_float32_and_resumes(mnist_npz, tmp_path, capsys,
                                                                                float32_afterwards):
    cfg = Config.mnist(data=mnist_npz, out=str(tmp_path / "out"), limit=32, batch_size=16, val_size=16, epochs=2,
                       gen_filters=4, gen_max_filters=8, disc_filters=4, verbose=0, precision="bf16")
    model, history = train(cfg)
    convs = [layer for net in (model.generator, model.discriminator) for layer in net.layers
             if isinstance(layer, keras.layers.Conv2D)]
    assert {c.compute_dtype for c in convs[:-1]} == {"bfloat16"} and {c.kernel.dtype for c in convs} == {"float32"}
    assert type(model.g_optimizer) is keras.optimizers.Adam and np.isfinite(history["g_l1_loss"][0])
    saved = keras.models.load_model(str(tmp_path / "out" / "generator.keras"), compile=False)
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    src = tf.random.uniform((4, 28, 28, 1), -1, 1, seed=3)
    trained = model.output_generator(src, training=False)
    assert trained.dtype == tf.float32  # bfloat16 inside, float32 out, within bfloat16's rounding:
    np.testing.assert_allclose(saved(src, training=False), trained, atol=0.05)
    for kept, last in zip(saved.get_weights(), model.output_generator.get_weights()):  # epoch 2's weights, not 1's
        np.testing.assert_array_equal(kept, last)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["precision"] == "bf16"
    _, history = train(dataclasses.replace(cfg, resume=True, epochs=3))
    assert len(history["g_l1_loss"]) == 3


def test_forced_mixed_precision_builds_and_steps(float32_afterwards):
    """The GPU code path on a CPU: float16 convolutions, float32 weights, outputs and losses."""
    keras.utils.set_random_seed(2)
    with distribute.precision_policy("fp16") as on:
        model = build_model(Config.mnist(gen_filters=4, gen_max_filters=8, disc_filters=4, l1_weight=100.0,
                                         no_paste=True), img_shape=(16, 16, 1),  # random inputs: no hole
                            model_class=ReplicatedPix2Pix)
    assert on == "fp16" and keras.mixed_precision.global_policy().name == "float32"  # restored on exit
    convs = [layer for net in (model.generator, model.discriminator) for layer in net.layers
             if isinstance(layer, keras.layers.Conv2D)]
    assert {c.compute_dtype for c in convs[:-1]} == {"float16"} and {c.kernel.dtype for c in convs} == {"float32"}
    assert all(isinstance(opt, keras.optimizers.LossScaleOptimizer) for opt in (model.d_optimizer, model.g_optimizer))
    src = tf.random.uniform((4, 16, 16, 1), -1, 1, seed=1)
    assert model.generator(src).dtype == tf.float32 and model.discriminator([src, src]).dtype == tf.float32
    before = model.generator.trainable_weights[0].numpy()
    for _ in range(4):
        logs = model.train_step((src, -src))
        assert all(value.dtype == tf.float32 and np.isfinite(float(value)) for value in logs.values())
    for optimizer in (model.d_optimizer, model.g_optimizer):
        # Each step was applied, or skipped because the scaled float16 gradients overflowed, and
        # then the loss scale (2**15 at first) was halved.
        halvings = np.log2(2.0 ** 15 / float(optimizer.dynamic_scale.numpy()))
        assert int(optimizer.iterations) >= 1 and int(optimizer.iterations) + halvings == 4
    assert np.any(model.generator.trainable_weights[0].numpy() != before)


def test_xla_and_compiled_steps_give_the_eager_losses():
    keras.utils.set_random_seed(4)
    src, target = (tf.random.uniform((4, 8, 8, 1), -1, 1, seed=s) for s in (1, 2))
    pairs = tf.data.Dataset.from_tensors((src, target)).repeat(2)  # 2 steps: the second sees updated nets
    start, found = None, {}
    for mode, compile_args in (("eager", dict(run_eagerly=True)), ("compiled", {}), ("xla", dict(jit_compile=True))):
        model = Pix2Pix(generator=unet((8, 8, 1), filters=4, max_filters=8, dropout=0.0),  # no random masks
                        discriminator=patch_discriminator((8, 8, 1), filters=4, n_layers=1))
        start = start or model.get_weights()
        model.set_weights(start)
        model.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                      g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5), **compile_args)
        found[mode] = model.fit(pairs, epochs=1, verbose=0).history
    for mode in ("compiled", "xla"):
        for name, values in found["eager"].items():
            assert found[mode][name] == pytest.approx(values, rel=1e-4, abs=1e-6), (mode, name)


def test_resume_refuses_a_change_of_precision(tmp_path):
    path = str(tmp_path / "pix2pix.weights.h5")
    before_the_flag = {k: v for k, v in dataclasses.asdict(Config.mnist()).items() if k != "precision"}
    for saved_config, refused in ((dataclasses.asdict(Config.mnist(precision="fp16")), True),
                                  (before_the_flag, False)):  # a checkpoint from before the flag: its default
        with h5py.File(path, "w") as f:
            f.attrs["pix2pix_progress"] = json.dumps({"epoch": 1, "step": 0, "history": {}, "config": saved_config})
        cfg = Config.mnist(out=str(tmp_path), resume=True, precision="fp32")
        if refused:
            with pytest.raises(ValueError, match="--precision fp16 -> fp32"):
                start_state(cfg, path)
        else:
            assert start_state(cfg, path) == (1, 0, {})


def test_sigterm_to_one_worker_stops_both_at_the_same_step(mnist_npz, tmp_path):
    """A preemption notice reaches one machine: the workers agree after every step, so both stop
    at the same step, with 143, and worker 0 saves a checkpoint there."""
    import signal
    import time

    from tools.checkpoint import read_progress
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    # 30 epochs, far more than the signal lets run: a run that ends first would test nothing
    flags = ["--limit", "256", "--batch-size", "16", "--val-size", "16", "--epochs", "30", *TINY_NETS,
             "--verbose", "2", "--save-every", "4", "--data", mnist_npz]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, program("worker.py"), str(tmp_path / f"weights{index}.npz"), "--strategy", "multiworker",
             "--out", str(tmp_path / f"out{index}"), *flags], env={**ENV, "TF_CONFIG": tf_config},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    checkpoint = tmp_path / "out0" / "pix2pix.weights.h5"
    try:
        deadline = time.time() + 200
        while not checkpoint.exists() and time.time() < deadline and procs[1].poll() is None:
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGTERM)  # worker 1 only
        outputs = [proc.communicate(timeout=200)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    if all(proc.returncode == 0 for proc in procs):
        pytest.skip("the run finished before the signal arrived")
    assert [proc.returncode for proc in procs] == [143, 143], "\n-----\n".join(o[-3000:] for o in outputs)
    stops = [next(line for line in o.splitlines() if line.startswith("stopped by SIGTERM")) for o in outputs]
    assert stops[0].split(";")[0] == stops[1].split(";")[0]  # "stopped by SIGTERM after E epochs and S steps"
    progress = read_progress(str(checkpoint))
    assert f"after {progress['epoch']} epochs and {progress['step']} steps" in stops[0]
