"""Where does the training step's time go? Every convolution of the compiled step, timed by oneDNN
(TensorFlow's CPU kernels), summed per net and per pass, with the dearest layers named.

    python benchmarks/profile_step.py                      # the MNIST preset's step, as `python pix2pix.py` runs it
    python benchmarks/profile_step.py --config paper       # 256x256, batch 1: U-Net-256, the 70x70 PatchGAN
    python benchmarks/profile_step.py --precision fp32 --set disc_max_filters=256

oneDNN times each primitive it runs when ONEDNN_VERBOSE=profile_exec is set. This script runs the
step (`pix2pix.build_model(cfg)`, the CLI's nets, optimizers and weight average) in a child process
with that set, warms it up, and reads the lines of `--steps` timed steps. Each convolution is matched
to its layer by its channels and output size. A Conv2DTranspose (the U-Net's decoder) runs as a
convolution's backward-data primitive, and its input gradient as a forward one: the table names the
layer's own passes. "reorders" are oneDNN's layout conversions (TensorFlow's HWIO weights into
oneDNN's blocked layout, at every use). Logging each primitive slows the step; the shares are what
to read. With two threads TensorFlow runs independent ops at once, so oneDNN's summed time can
exceed the step's wall time. CPU only.
"""
import argparse
import collections
import dataclasses
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "PROFILE_STEP "  # the child's lines for the parent: this tag, then JSON
PASSES = ("forward", "input gradient", "weight gradient")


def build(config, precision, changes):
    """(the compiled Pix2Pix of `config` with Config `changes`, a (src, target) batch, precision used)."""
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_train
    import pix2pix
    from config import Config
    from tools import distribute
    cfg = (Config.mnist if config == "mnist" else Config.paper)(**changes)
    img_shape = (28, 28, 1) if config == "mnist" else (256, 256, 3)
    precision = distribute.resolve_precision(precision)
    with distribute.precision_policy(precision):
        model = pix2pix.build_model(cfg, img_shape)
    return model, bench_train.example_batch(config, cfg.batch_size, img_shape), precision


def conv_layers(model):
    """{(ic, oc, ih, oh): [(net, what the layer does, transposed)]}: each conv of both nets, keyed as
    oneDNN describes it (a transposed conv's sides swapped; a conv of "valid" padding, which follows a
    ZeroPadding2D here, also under its unpadded side: TensorFlow may fold the padding into it)."""
    from keras import layers
    found = collections.defaultdict(list)
    for net, part in (("G", model.generator), ("D", model.discriminator)):
        for layer in part.layers:
            if not isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)):
                continue
            (_, ih, iw, ic), (_, oh, ow, oc) = layer.input.shape, layer.output.shape
            what = f"{layer.name}: {ih}x{iw}x{ic} -> {oh}x{ow}x{oc}"
            if isinstance(layer, layers.Conv2DTranspose):  # a convolution run backwards: its sides swap
                found[(oc, ic, oh, ih)].append((net, what, True))
                continue
            found[(ic, oc, ih, oh)].append((net, what, False))
            if layer.padding == "valid":  # the PatchGAN's stride-1 convs, after ZeroPadding2D(1)
                found[(ic, oc, ih - 2, oh)].append((net, what, False))
    return found


def child(args):
    """Run the step under oneDNN's verbose mode; print the layer table and the timed steps' wall time."""
    import tensorflow as tf
    changes = {k: json.loads(v) if v[:1].isdigit() or v[:1] in "-[{" else v
               for k, v in (item.split("=", 1) for item in args.set)}
    model, (src, target), precision = build(args.config, args.precision, changes)
    step = tf.function(model.train_step)
    for _ in range(3):  # traces, compiles, and lets oneDNN create its primitives
        float(step((src, target))["d_loss"])
    layers = {json.dumps(key): value for key, value in conv_layers(model).items()}
    print(MARK + json.dumps({"layers": layers, "precision": precision}), flush=True)
    start = time.perf_counter()
    for _ in range(args.steps):
        out = step((src, target))
    float(out["d_loss"])
    print(MARK + json.dumps({"wall_ms": (time.perf_counter() - start) * 1000 / args.steps}), flush=True)


def attribute(lines, layers, steps):
    """(ms per step by (net, pass), by layer (net, name, pass, shape), of reorders, of other primitives)."""
    by_pass, by_layer = collections.Counter(), collections.Counter()
    reorders = other = 0.0
    for line in lines:
        fields = line.strip().split(",")
        kind, prop, ms, shape = fields[5], fields[7], float(fields[-1]), fields[-2]
        if kind == "reorder":
            reorders += ms
            continue
        sizes = re.search(r"ic(\d+)oc(\d+)_ih(\d+)oh(\d+)", shape)
        if kind != "convolution" or not sizes:
            other += ms
            continue
        matches = layers.get(json.dumps([int(s) for s in sizes.groups()]), [])
        net = "/".join(sorted({m[0] for m in matches})) or "?"
        transposed = bool(matches) and matches[0][2]
        which = {"backward_weights": 2, "backward_data": 0 if transposed else 1}.get(prop, 1 if transposed else 0)
        by_pass[(net, PASSES[which])] += ms / steps
        by_layer[(net, " or ".join(m[1] for m in matches) or shape, PASSES[which])] += ms / steps
    return by_pass, by_layer, reorders / steps, other / steps


def report(by_pass, by_layer, reorders, other, wall_ms, top):
    """The tables, as text."""
    total = sum(by_pass.values()) + reorders + other
    rows = ["| net | pass | ms per step | share |", "| --- | --- | ---: | ---: |"]
    for net in sorted({n for n, _ in by_pass}):
        for name in PASSES:
            if (net, name) in by_pass:
                rows.append(f"| {net} | {name} | {by_pass[(net, name)]:.1f} | {by_pass[(net, name)] / total:.0%} |")
    rows += [f"| all | reorders (layout conversions) | {reorders:.1f} | {reorders / total:.0%} |",
             f"| all | other oneDNN primitives | {other:.1f} | {other / total:.0%} |",
             f"| | **oneDNN in all** (the step's wall time while logging: {wall_ms:.0f} ms) | {total:.1f} | 100% |",
             "", "| net | layer: input -> output | pass | ms per step | share |",
             "| --- | --- | --- | ---: | ---: |"]
    for (net, name, which), ms in by_layer.most_common(top):
        rows.append(f"| {net} | {name} | {which} | {ms:.1f} | {ms / total:.0%} |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=("mnist", "paper"), default="mnist",
                        help="mnist: Config.mnist(), batch 64; paper: Config.paper(), 256x256x3, batch 1")
    parser.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="auto")
    parser.add_argument("--steps", type=int, default=20, help="steps timed (after 3 of warm-up)")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="Config settings to change, as disc_max_filters=128")
    parser.add_argument("--top", type=int, default=8, help="the dearest layer passes to list")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from config import Config
    known = {field.name for field in dataclasses.fields(Config)}
    for item in args.set:
        if item.split("=", 1)[0] not in known or "=" not in item:
            parser.error(f"--set {item}: give NAME=VALUE with NAME a Config setting, as disc_max_filters=128")
    if args.child:
        return child(args)
    command = [sys.executable, os.path.abspath(__file__), "--child", *(argv if argv is not None else sys.argv[1:])]
    env = {**os.environ, "ONEDNN_VERBOSE": "profile_exec", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"the profiled step failed:\n{result.stderr[-2000:]}")
    lines = result.stdout.splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith(MARK)]
    if len(marks) != 2:
        sys.exit("the child printed no profile; is TensorFlow's oneDNN on (TF_ENABLE_ONEDNN_OPTS not 0)?")
    info = json.loads(lines[marks[0]][len(MARK):])
    wall_ms = json.loads(lines[marks[1]][len(MARK):])["wall_ms"]
    timed = [line for line in lines[marks[0] + 1:marks[1]] if ",primitive,exec," in line]
    layers = info["layers"]
    print(f"{args.config}, {info['precision']}, {args.steps} steps" + (f", {' '.join(args.set)}" if args.set else ""))
    print(report(*attribute(timed, layers, args.steps), wall_ms, args.top))


if __name__ == "__main__":
    main()
