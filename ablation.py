"""The paper's loss ablation (Isola et al. 2017, Table 1) on MNIST inpainting.

    python pix2pix.py ablation --epochs 5 --test-data path/to/mnist-t10k

trains Pix2Pix once per loss variant (l1, gan, cgan, l1+gan, l1+cgan) with the same budget and seed,
scores every generator on held-out digits with evaluate.inpainting_scores, and writes into --out
(default runs/ablation) `ablation.md`, the table, and `ablation.png`, every variant's outputs on the
same inputs. Each variant trains in a folder of its own; running the command again resumes or
skips the variants already done. Every training flag of `python pix2pix.py` applies to all variants.
"""
import argparse
import dataclasses
import os

import numpy as np

import evaluate
import pix2pix
from mnist_ds import load_mnist, make_src, split_train_val, to_unit_range
from visual import comparison_grid, save_image

# Columns of the table: (score key of evaluate.inpainting_scores, heading, format).
COLUMNS = [("acc_generated", "digit accuracy", "{:.1%}"), ("l1_hole", "L1 in hole", "{:.3f}"),
           ("ssim_hole", "SSIM in hole", "{:.3f}"), ("frechet_generated", "Fréchet distance", "{:.2f}"),
           ("grey_hole", "grey pixels in hole", "{:.1%}")]  # "hole": the whole image for other tasks


def held_out_digits(cfg, test_data, limit):
    """(images uint8 [n, 28, 28], labels, where): MNIST's test split if it can be had, else the
    validation split that training held out."""
    try:
        images, labels = load_mnist(test_data, split="test", other_split_ok=False)
        where = "MNIST test digits"
    except RuntimeError:  # offline and no --test-data: the held-out validation digits
        images, labels = load_mnist(cfg.data)
        _, val = split_train_val(np.arange(len(images)), cfg.val_size, cfg.seed)
        images, labels, where = images[val], labels[val], "held-out validation digits"
    return images[:limit or None], labels[:limit or None], where


def train_variant(cfg, loss):
    """Train (or resume, or skip if finished) the variant `loss`; returns its generator's path."""
    out = os.path.join(cfg.out, loss.replace("+", "_"))
    checkpoint = os.path.join(out, "pix2pix.weights.h5")
    print(f"\n=== loss {loss} -> {out}")
    variant = dataclasses.replace(cfg, loss=loss, out=out, resume=os.path.exists(checkpoint))
    pix2pix.train(variant)
    return os.path.join(out, "generator.keras")


def markdown_table(rows, where, cfg):
    """The ablation table as markdown: one row per (name, scores)."""
    lines = [f"Loss ablation on MNIST {cfg.task}: {rows[0][1]['digits']:,} {where}, "
             f"{cfg.epochs} epochs, seed {cfg.seed}, lambda {cfg.l1_weight:g}.", "",
             "| loss | " + " | ".join(heading for _, heading, _ in COLUMNS) + " |",
             "| --- |" + " ---: |" * len(COLUMNS)]
    for name, scores in rows:
        lines.append(f"| {name} | " + " | ".join(fmt.format(scores[key]) for key, _, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pix2pix.py ablation", description=__doc__.split("\n\n")[0],
                                     epilog="Other flags: those of `python pix2pix.py --help` "
                                            "(defaults here: --epochs 5, --out runs/ablation).")
    parser.add_argument("--test-data", help="MNIST test digits: mnist.npz or a folder of t10k idx files "
                                            "(default: $MNIST_PATH, else Keras' download, else the validation split)")
    parser.add_argument("--test-limit", type=int, default=0, help="score only N held-out digits (0: all)")
    args, rest = parser.parse_known_args(argv)
    defaults = {"--epochs": "5", "--out": os.path.join("runs", "ablation")}
    rest += [item for flag, value in defaults.items() if flag not in rest for item in (flag, value)]
    cfg = pix2pix.parse_args(rest)
    generators = {loss: train_variant(cfg, loss) for loss in ("l1", "gan", "cgan", "l1+gan", "l1+cgan")}

    import keras
    images, labels, where = held_out_digits(cfg, args.test_data, args.test_limit)
    classifier = evaluate.load_or_train_classifier()
    real = to_unit_range(images[:8])                       # the picture: 8 digits with the scored holes
    masked = np.asarray(make_src(cfg.task, real, seed=(cfg.seed, 0)))
    rows, outputs = [], {}
    for loss, path in generators.items():
        generator = keras.models.load_model(path, compile=False)
        rows.append((loss, evaluate.inpainting_scores(generator, images, labels, classifier, seed=cfg.seed,
                                                      task=cfg.task)))
        outputs[loss] = generator.predict(masked, verbose=0)
    table = markdown_table(rows, where, cfg)
    with open(os.path.join(cfg.out, "ablation.md"), "w") as f:
        f.write(table)
    save_image(comparison_grid([masked, *outputs.values(), real], ["input", *outputs, "real"]),
               os.path.join(cfg.out, "ablation.png"))
    print("\n" + table + f"\nWritten: {os.path.join(cfg.out, 'ablation.md')}, {os.path.join(cfg.out, 'ablation.png')}")
