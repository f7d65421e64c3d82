"""Do the MNIST preset's settings serve every task? Train each MNIST-sized task with the settings
of `python pix2pix.py --task TASK --epochs 8` and score it on held-out test images as `evaluate` does.

    python benchmarks/task_scores.py --test-data ../shared/data/mnist-t10k          # edges2digit, denoise, superres
    python benchmarks/task_scores.py --tasks edges2fashion --seeds 0 1               # Fashion-MNIST's test items
    python benchmarks/task_scores.py --settings preset,old --test-data PATH          # side by side with the old

`--settings old` trains with the preset's settings before 12-03 (U-Net 64-256 and PatchGAN 64
filters, no weight averaging, float32), for a comparison under one judge. Each (task, settings,
seed) trains in runs/tasks/TASK-SETTINGS-sN (a finished run is skipped, an interrupted one resumed:
run the command again) and is scored with `evaluate.evaluate`, which also writes its scores.json
and results page there. The table printed at the end (also runs/tasks/tasks.md) gives each row's
mean over the seeds with the spread (min-max); runs/tasks/tasks.png shows the first 8 test digits
of every digit task, input | generated (seed 0 of the first settings), and the real digit.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from quality_variants import SMALL_D, WIDE, spread, train_timed  # noqa: E402

from config import TASKS, Config, RunFiles  # noqa: E402

SETTINGS = {"preset": {},  # Config.mnist() as it is
            "old": dict(WIDE, ema=0.0, precision="fp32"),  # the preset before 12-03, as the old tables ran
            "12-03": SMALL_D,  # the preset of 12-03: both nets half as wide, the paper's learning rate
            "lr8": dict(SMALL_D, lr=8e-4),  # the preset of 12-03 evening: lr 8e-4, a PatchGAN of 2 stride-2 layers
            "p70": dict(SMALL_D, lr=8e-4, disc_layers=3)}  # 12-03 late evening: 70x70 patches, D uncapped (256)
COLUMNS = [("acc_input", "input accuracy", "{:.1%}"), ("acc_generated", "generated accuracy", "{:.1%}"),
           ("acc_input_baseline", "baseline", "{:.1%}"), ("frechet_generated", "Fréchet", "{:.2f}"),
           ("l1_region", "L1", "{:.3f}"), ("ssim_region", "SSIM", "{:.3f}"), ("grey_region", "grey", "{:.1%}"),
           ("minutes", "minutes", "{:.1f}")]  # "hole": the whole image for every task but inpaint
SHORT = {"edges2digit": "edges", "denoise": "noisy", "superres": "7x7", "inpaint": "masked", "edges2fashion": "edges"}


def run_config(task, settings, seed, epochs, root):
    """The Config of one (task, settings, seed) run."""
    return Config.mnist(**SETTINGS[settings], task=task, epochs=epochs, seed=seed, verbose=2,
                        out=os.path.join(root, f"{task}-{settings}-s{seed}"))


def train_and_score(cfg, test_data):
    """Train (or resume, or skip) the run `cfg`, then score it with evaluate.evaluate (once: its
    scores.json is reused); returns the scores with "minutes"."""
    import json

    from tools.evaluate import evaluate
    minutes = train_timed(cfg)
    files = RunFiles(cfg.out)
    if os.path.exists(files.scores):
        with open(files.scores) as f:
            scores = json.load(f)
    else:
        scores = evaluate(files.generator, cfg.task, None if cfg.task == "edges2fashion" else test_data)
    return {**scores, "minutes": minutes}


def table(results):
    """Markdown: one row per (task, settings), mean (min-max) over its seeds."""
    lines = ["| task | settings | seeds | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "| --- | --- | ---: |" + " ---: |" * len(COLUMNS)]
    for (task, settings), runs in results.items():
        cells = [spread([r[key] for r in runs], fmt) for key, _, fmt in COLUMNS]
        lines.append(f"| {task} | {settings} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def picture(configs, test_data, path):
    """tasks.png: for the first 8 test digits, each digit task's input and its generator's output
    (the runs in `configs`, one per task), then the real digit."""
    import keras

    from mnist_ds import load_for_task
    from tools.evaluate import task_inputs
    from visual import comparison_grid, save_image
    images, _ = load_for_task("inpaint", test_data, split="test")
    columns, titles, real = [], [], None
    for cfg in configs:
        real, src, _ = task_inputs(images[:8], cfg.task)
        generator = keras.models.load_model(RunFiles(cfg.out).generator, compile=False)
        columns += [src, np.asarray(generator.predict(src, verbose=0))]
        titles += [SHORT[cfg.task], "generated"]
    save_image(comparison_grid([*columns, real], [*titles, "real"]), path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="edges2digit,denoise,superres",
                        help=f"comma-separated, of {', '.join(TASKS)}")
    parser.add_argument("--settings", default="preset", help=f"comma-separated, of {', '.join(SETTINGS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=8, help="epochs of every run (the docs' commands: 8)")
    parser.add_argument("--test-data", help="MNIST test digits (default: $MNIST_PATH, else Keras' download)")
    parser.add_argument("--out", default=os.path.join("runs", "tasks"))
    args = parser.parse_args(argv)
    tasks, settings = args.tasks.split(","), args.settings.split(",")
    for name, known in ((tasks, TASKS), (settings, SETTINGS)):
        unknown = [n for n in name if n not in known]
        if unknown:
            parser.error(f"unknown {', '.join(unknown)}; known: {', '.join(known)}")
    results = {(task, s): [train_and_score(run_config(task, s, seed, args.epochs, args.out), args.test_data)
                           for seed in args.seeds] for task in tasks for s in settings}
    text = table(results)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tasks.md"), "w") as f:
        f.write(text)
    print("\n" + text)
    digit_tasks = [t for t in tasks if t != "edges2fashion"]
    if digit_tasks:
        path = os.path.join(args.out, "tasks.png")
        picture([run_config(t, settings[0], args.seeds[0], args.epochs, args.out) for t in digit_tasks],
                args.test_data, path)
        print(f"Written: {os.path.join(args.out, 'tasks.md')}, {path}")


if __name__ == "__main__":
    main()
