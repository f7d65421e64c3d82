"""benchmarks/bench_train.py at a tiny budget: every mode gives a positive, finite speed, and the
tutorial-style reference step really trains both nets."""
import json
import math
import os
import sys

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import bench_train  # noqa: E402

pytestmark = pytest.mark.slow  # the learner's subset leaves it out: -m "not slow"


def test_quick_mnist_run_gives_a_speed_for_every_mode(tmp_path, capsys):
    """Every mode but XLA, whose compile alone takes a minute (tests/test_distribute.py checks XLA's losses)."""
    path = tmp_path / "bench.json"
    timed = [m for m in bench_train.MODES["mnist"] if m != "xla"]
    code = bench_train.main(["--quick", "--small", "--only", "mnist", "--no-isolate", "--json", str(path),
                             "--modes", ",".join(timed)])
    assert code == 0
    result = json.loads(path.read_text())
    rows = result["rows"]
    assert not [r for r in rows if "error" in r]
    modes = {r["mode"]: r for r in rows if r["config"] == "mnist"}
    assert "xla" not in modes
    for mode in (*timed, "input pipeline", "fit epoch (compiled)", "fit epoch (bf16)"):
        assert mode in modes, mode
        speed = modes[mode]["images_per_s"]
        assert math.isfinite(speed) and speed > 0, (mode, speed)
    for mode in timed:
        row = modes[mode]
        assert row["steps"] == 2 and row["batch_size"] == 64
        assert row["loss_finite"] and row["ms_per_step"] > 0 and row["peak_rss_mib"] > 0
    assert modes["input pipeline"]["images"] == 320
    assert "reference" in bench_train.MODES["mnist"]
    assert {"mnist: compiled / eager", "mnist: bf16 / compiled", "mnist: compiled / reference",
            "mnist: fit epoch (bf16) / fit epoch (compiled)"} <= set(result["ratios"])
    assert modes["fit epoch (bf16)"]["precision"] == "bf16"
    out = capsys.readouterr().out
    assert "| config | mode |" in out and "Command: `python" in out and "TensorFlow" in out


def test_rounds_take_turns_and_pool_their_times():
    """--rounds 2 runs the job list twice in the same order, and merge_rounds pools each mode's step
    times, takes the median epoch and the best peak, and keeps a failure."""
    args = bench_train.parse_args(["--only", "mnist", "--modes", "compiled,bf16", "--rounds", "2"])
    order = [(j["kind"], j.get("mode"), j.get("precision")) for j in bench_train.jobs(args)]
    assert len(order) == 10 and order[:5] == order[5:]
    assert ("data", None, "bf16") in order
    step = dict(config="mnist", mode="compiled", batch_size=4, steps=2, peak_rss_mib=10, rss_growth_mib=1)
    epoch = dict(config="mnist", mode="fit epoch (compiled)", images=40, steps=10)
    rows = [{**step, "step_times_s": [1.0, 3.0]}, {**epoch, "epoch_s": 8.0},
            {"config": "machine", "mode": "peak float32", "gflops_per_s": 100.0},
            {**step, "step_times_s": [2.0, 4.0, 5.0], "peak_rss_mib": 12}, {**epoch, "epoch_s": 2.0},
            {"config": "machine", "mode": "peak float32", "gflops_per_s": 300.0},
            {"config": "mnist", "mode": "bf16", "error": "boom"}, {**step, "mode": "bf16", "step_times_s": [1.0]}]
    merged = {r["mode"]: r for r in bench_train.merge_rounds(rows)}
    assert merged["compiled"]["steps"] == 5 and merged["compiled"]["ms_per_step"] == 3000.0
    assert merged["compiled"]["images_per_s"] == 4 / 3.0 and merged["compiled"]["peak_rss_mib"] == 12
    assert merged["fit epoch (compiled)"]["epoch_s"] == 5.0 and merged["fit epoch (compiled)"]["images_per_s"] == 8.0
    assert merged["peak float32"]["gflops_per_s"] == 300.0
    assert merged["bf16"]["error"] == "boom"


def test_isolated_reference_case_reports_memory():
    rows = bench_train.run_isolated({"kind": "case", "config": "mnist", "mode": "reference", "steps": 2,
                                     "warmup": 1, "small": True}, timeout=120)
    assert len(rows) == 1 and "error" not in rows[0], rows
    row = rows[0]
    assert row["mode"] == "reference" and row["steps"] == 2
    assert math.isfinite(row["images_per_s"]) and row["images_per_s"] > 0
    assert row["loss_finite"] and row["peak_rss_mib"] > 100  # TensorFlow alone takes more


def test_reference_step_updates_both_nets_from_the_same_pass():
    """One step of Adam moves each weight by lr * sign(gradient): check it against gradients
    computed here, G's of the GAN + L1 loss and D's of the real + generated loss, both at the
    weights before the step (the tutorial's simultaneous update)."""
    import keras
    import tensorflow as tf

    from nets import patch_discriminator, unet
    keras.utils.set_random_seed(1)
    shape, lr, l1_weight = (16, 16, 1), 2e-4, 100.0
    generator = unet(shape, filters=8, max_filters=16, dropout=0.0)  # no dropout: a repeatable pass
    discriminator = patch_discriminator(shape, filters=8)
    src = tf.random.uniform((4, *shape), -1, 1)
    target = tf.random.uniform((4, *shape), -1, 1)

    xent = tf.nn.sigmoid_cross_entropy_with_logits
    with tf.GradientTape(persistent=True) as tape:
        fake = generator(src, training=True)
        real_logits = discriminator([src, target], training=True)
        fake_logits = discriminator([src, fake], training=True)
        g_loss = (tf.reduce_mean(xent(labels=tf.ones_like(fake_logits), logits=fake_logits))
                  + l1_weight * tf.reduce_mean(tf.abs(target - fake)))
        d_loss = (tf.reduce_mean(xent(labels=tf.ones_like(real_logits), logits=real_logits))
                  + tf.reduce_mean(xent(labels=tf.zeros_like(fake_logits), logits=fake_logits)))
    g_grads = tape.gradient(g_loss, generator.trainable_variables)
    d_grads = tape.gradient(d_loss, discriminator.trainable_variables)

    before = {id(v): v.numpy().copy() for v in generator.variables + discriminator.variables}
    step, g_opt, d_opt = bench_train.make_reference_step(generator, discriminator, l1_weight=l1_weight, lr=lr)
    losses = {k: float(v) for k, v in step(src, target).items()}
    assert all(math.isfinite(v) for v in losses.values()), losses
    assert losses["disc_loss"] == pytest.approx(float(d_loss), rel=1e-4)
    assert losses["gen_total_loss"] == pytest.approx(float(g_loss), rel=1e-4)

    for net, grads in ((generator, g_grads), (discriminator, d_grads)):
        assert len(net.trainable_variables) > 0
        for var, grad in zip(net.trainable_variables, grads):
            delta = var.numpy() - before[id(var)]
            assert np.any(delta != 0), f"{net.name}: {var.path} did not change"
            grad = grad.numpy()
            big = np.abs(grad) > 1e-3  # where Adam's epsilon is negligible: a step of exactly lr
            np.testing.assert_allclose(delta[big], -lr * np.sign(grad[big]), atol=0.05 * lr,
                                       err_msg=f"{net.name}: {var.path}")
        # BatchNorm statistics follow the training batch too
        moved = [v for v in net.non_trainable_variables if np.any(v.numpy() != before[id(v)])]
        assert moved, f"{net.name}: no BatchNorm moving statistic changed"
    assert int(g_opt.iterations.numpy()) == 1 and int(d_opt.iterations.numpy()) == 1


def test_report_and_ratios_from_rows():
    rows = [{"config": "paper", "mode": m, "batch_size": 1, "steps": 3, "ms_per_step": ms, "ms_sd": 1.0,
             "images_per_s": 1e3 / ms, "warmup_s": 5.0, "first_step_s": 4.0, "peak_rss_mib": 2000.0,
             "rss_growth_mib": 900.0}
            for m, ms in (("eager", 400.0), ("compiled", 200.0), ("xla", 100.0), ("reference", 160.0))]
    rows.append({"config": "paper", "mode": "xla", "error": "boom"})
    found = bench_train.ratios(rows)
    assert found["paper: compiled / eager"] == pytest.approx(2.0)
    assert found["paper: xla / compiled"] == pytest.approx(2.0)
    assert found["paper: compiled / reference"] == pytest.approx(0.8)
    info = bench_train.machine_info()
    assert info["nproc"] >= 1
    report = bench_train.format_report(rows, info, "python benchmarks/bench_train.py", {"steps": 3})
    assert "paper 256x256x3 | reference | 1 | 3 | 160.0" in report
    assert "failed: boom" in report and "compiled / reference: 0.80x" in report


def test_quality_variants_times_epochs_of_each_variant_in_turn(mnist_npz, tmp_path, monkeypatch):
    """--time-epochs: every variant's epochs after the first (which traces the step) are timed, the
    variants taking turns; the run folders hold the short runs, not the real ones."""
    import quality_variants
    tiny = dict(data=mnist_npz, gen_filters=4, gen_max_filters=8, disc_filters=4, limit=64, batch_size=32,
                val_size=16)
    monkeypatch.setattr(quality_variants, "VARIANTS", {"a": ("tiny", tiny),
                                                       "b": ("tiny, ema off", {**tiny, "ema": 0.0})})
    medians = quality_variants.time_epochs(["a", "b"], 1, str(tmp_path), rounds=1)
    assert set(medians) == {"a", "b"} and all(0 < s < 60 for s in medians.values())
    history = json.loads((tmp_path / "timing" / "b" / "history.json").read_text())
    assert len(history["g_l1_loss"]) == 2  # the traced epoch and the timed one


def test_quality_variants_name_their_nets_so_a_new_preset_leaves_them_as_measured():
    """Every variant but "default" fixes both nets' widths and the learning rate: a row measured on
    12-02 must train the same run after Config.mnist() or a builder's default changes (the "today"
    row once trained the later, narrower U-Net)."""
    import quality_variants
    import task_scores
    named = {"gen_filters", "gen_max_filters", "disc_filters", "disc_layers", "disc_max_filters", "lr"}
    for name, (_, changes) in quality_variants.VARIANTS.items():
        if name != "default":
            assert named <= set(changes), name
    for name, changes in task_scores.SETTINGS.items():
        if name != "preset":
            assert named <= set(changes), name
    assert quality_variants.VARIANTS["today"][1]["gen_filters"] == 64


def test_quality_variants_extra_settings_reach_the_built_model_and_only_inside_the_block():
    """Settings that are not Config fields (D's own rate, the U-Net's depth) are applied around
    pix2pix.build_model, which a variant's train calls, and undone after."""
    import quality_variants

    import pix2pix
    from config import Config
    cfg = Config.mnist(gen_filters=4, gen_max_filters=8, disc_filters=4)
    changes, extra = quality_variants.split_extra(quality_variants.VARIANTS["default+dlr2"][1])
    assert extra == {"disc_lr": 2e-4} and "disc_lr" not in changes
    with quality_variants.extra_settings(disc_lr=1e-3, unet_depth=3):
        model = pix2pix.build_model(cfg)
    assert model.generator.name == "unet_3"
    assert np.isclose(float(model.d_optimizer.learning_rate), 1e-3)
    assert np.isclose(float(model.g_optimizer.learning_rate), cfg.lr)
    model = pix2pix.build_model(cfg)
    assert model.generator.name == "unet_5" and np.isclose(float(model.d_optimizer.learning_rate), cfg.lr)


def test_quality_variants_label_smoothing_and_d_steps_change_only_d_and_are_undone(mnist_npz):
    """real_label: D's loss on real pairs is taken against that label (G's target stays 1.0);
    d_steps: D's optimizer steps that many times per batch, G's once; both undone after the block."""
    import quality_variants

    import pix2pix
    from config import Config
    cfg = Config.mnist(gen_filters=4, gen_max_filters=8, disc_filters=4)
    import tensorflow as tf
    src, target = tf.zeros((2, 28, 28, 1)), tf.ones((2, 28, 28, 1))
    seen = []
    plain = pix2pix.bce_with_logits
    spy = lambda label, logits: seen.append(label) or plain(label, logits)  # noqa: E731
    with quality_variants.extra_settings(real_label=0.9, d_steps=2):
        model = pix2pix.build_model(cfg)
        pix2pix.bce_with_logits = spy
        try:
            model.train_step((src, target))
        finally:
            pix2pix.bce_with_logits = plain
    assert int(model.d_optimizer.iterations) == 2 and int(model.g_optimizer.iterations) == 1
    assert seen.count(0.9) == 2 and seen.count(1.0) == 1  # D's real label twice, G's target once
    model = pix2pix.build_model(cfg)
    model.train_step((src, target))
    assert int(model.d_optimizer.iterations) == 1


def test_quality_variants_shift_moves_input_and_target_together():
    """shift_pairs moves each pair by one offset: the hole stays over the same part of the digit,
    background (-1) comes in at the edges, and the sizes are kept."""
    import quality_variants
    rng = np.random.default_rng(0)
    target = rng.uniform(-1, 1, (8, 28, 28, 1)).astype(np.float32)
    src = target.copy()
    src[:, 10:16, 10:16] = 0.0
    moved_src, moved_target = (np.asarray(a) for a in quality_variants.shift_pairs(src, target, pixels=2))
    assert moved_src.shape == moved_target.shape == (8, 28, 28, 1)
    kept = moved_src != 0.0
    np.testing.assert_array_equal(moved_src[kept], moved_target[kept])  # same offset for both
    assert (moved_src == 0.0).sum() == (src == 0.0).sum()  # the hole moved whole (it is 2 px from any edge)
    assert not np.array_equal(moved_target, target)  # 8 random offsets of up to 2 px: some moved


def test_task_scores_trains_each_task_once_and_writes_table_and_picture(mnist_npz, tmp_path, monkeypatch):
    """benchmarks/task_scores.py: one run per (task, settings, seed), scored by evaluate (its
    scores.json beside the run), a table row each, and the picture of every digit task; run again,
    nothing trains anew."""
    import task_scores

    from tools import evaluate
    classifier = evaluate.digit_classifier()  # untrained: the plumbing is under test, not the judge
    monkeypatch.setattr(evaluate, "load_or_train_classifier", lambda *args, **kwargs: classifier)
    monkeypatch.setitem(task_scores.SETTINGS, "tiny", dict(data=mnist_npz, gen_filters=4, gen_max_filters=8,
                                                           disc_filters=4, limit=64, batch_size=32, val_size=16))
    args = ["--tasks", "denoise,superres", "--settings", "tiny", "--epochs", "1", "--test-data", mnist_npz,
            "--out", str(tmp_path)]
    task_scores.main(args)
    rows = (tmp_path / "tasks.md").read_text().splitlines()[2:]
    assert [row.split("|")[1].strip() for row in rows] == ["denoise", "superres"]
    assert json.loads((tmp_path / "superres-tiny-s0" / "scores.json").read_text())["digits"] == 100
    picture = Image.open(tmp_path / "tasks.png")
    assert picture.width == 5 * (28 * 3 + 4) + 4  # 5 columns: noisy, generated, 7x7, generated, real
    weights = (tmp_path / "denoise-tiny-s0" / "pix2pix.weights.h5").stat().st_mtime_ns
    task_scores.main(args)
    assert (tmp_path / "denoise-tiny-s0" / "pix2pix.weights.h5").stat().st_mtime_ns == weights
    with pytest.raises(SystemExit):
        task_scores.main(["--tasks", "colorize"])


def test_mnist_wide_times_the_old_presets_nets_next_to_todays():
    """--only mnist,mnist-wide: the preset's nets before 12-03 (PatchGAN 64, U-Net up to 256 filters)
    beside today's, and the ratio of today's bf16 step to the old float32 one."""
    import keras
    args = bench_train.parse_args(["--only", "mnist,mnist-wide", "--modes", "compiled,bf16", "--no-epoch"])
    cases = [(j["config"], j["mode"]) for j in bench_train.jobs(args) if j["kind"] == "case"]
    assert cases == [("mnist", "compiled"), ("mnist", "bf16"), ("mnist-wide", "compiled"), ("mnist-wide", "bf16")]
    widths = {}
    for config in ("mnist", "mnist-wide"):
        generator, discriminator, batch, _ = bench_train.build_nets(config)
        convs = lambda net: [la.filters for la in net.layers if isinstance(la, keras.layers.Conv2D)]  # noqa: E731
        widths[config] = (max(convs(generator)), convs(discriminator)[0], batch)
    assert widths == {"mnist": (128, 32, 64), "mnist-wide": (256, 64, 64)}
    rows = [{"config": "mnist", "mode": "bf16", "images_per_s": 30.0},
            {"config": "mnist-wide", "mode": "compiled", "images_per_s": 10.0}]
    assert bench_train.ratios(rows) == {"mnist: bf16 / compiled of mnist-wide": 3.0}
    with pytest.raises(SystemExit):
        bench_train.parse_args(["--only", "mnist,minst"])


def test_profile_step_attributes_every_convolution_to_its_net_and_layer(capsys):
    import profile_step
    profile_step.main(["--steps", "1", "--top", "40", "--precision", "fp32",
                       "--set", "gen_filters=4", "gen_max_filters=8", "disc_filters=4", "batch_size=4"])
    text = capsys.readouterr().out
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ")]
    nets = {row[0].strip("| ") for row in rows[2:] if row[1] in profile_step.PASSES}
    assert nets == {"D", "G"}, text  # every convolution matched to one net: none unknown ("?")
    layers = {row[1] for row in rows if row[0] in ("| D", "| G") and ":" in row[1]}
    assert any("conv2d_transpose" in name for name in layers), text  # the decoder, matched backwards
    assert any("patch_logits" in name for name in layers), text
    total = next(row for row in rows if "oneDNN in all" in row[1])
    assert float(total[2]) > 0
    with pytest.raises(SystemExit):  # a setting Config does not have: refused before anything runs
        profile_step.main(["--set", "disc_max_filter=128"])
    assert "--set disc_max_filter=128: give NAME=VALUE" in capsys.readouterr().err
