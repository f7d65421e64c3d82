"""The paper's loss ablation (Isola et al. 2017, Table 1) on MNIST inpainting.

    python pix2pix.py ablation --epochs 5 --test-data path/to/mnist-t10k

trains Pix2Pix once per loss variant (l1, gan, cgan, l1+gan, l1+cgan) with the same budget and seed,
scores every generator on held-out digits with evaluate.score_generator, and writes into --out
(default runs/ablation) `ablation.md`, the table, and `ablation.png`, every variant's outputs on the
same inputs. Each variant trains in a folder of its own; running the command again resumes or
skips the variants already done. Every training flag of `python pix2pix.py` applies to all variants.
"""
import os

import keras
import numpy as np

from config import LOSSES, RunFiles
from mnist_ds import load_mnist, split_train_val, to_unit_range
from tasks import make_src
from tools.evaluate import load_or_train_classifier, score_generator
from tools.training import train
from visual import comparison_grid, save_image

# Columns of the table: (score key of evaluate.score_generator, heading, format).
COLUMNS = [("acc_generated", "digit accuracy", "{:.1%}"), ("l1_region", "L1 in hole", "{:.3f}"),
           ("ssim_region", "SSIM in hole", "{:.3f}"), ("frechet_generated", "Fréchet distance", "{:.2f}"),
           ("grey_region", "grey pixels in hole", "{:.1%}")]  # "hole": the whole image for other tasks


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
    """Train (or resume, or skip if finished) the variant `loss` (training.train); returns its
    generator's path."""
    files = RunFiles(os.path.join(cfg.out, loss.replace("+", "_")))
    print(f"\n=== loss {loss} -> {files.folder}")
    train(cfg.replace(loss=loss, out=files.folder, resume=os.path.exists(files.checkpoint)))
    return files.generator


def markdown_table(rows, where, cfg):
    """The ablation table as markdown: one row per (name, scores)."""
    lines = [f"Loss ablation on MNIST {cfg.task}: {rows[0][1]['digits']:,} {where}, "
             f"{cfg.epochs} epochs, seed {cfg.seed}, lambda {cfg.l1_weight:g}.", "",
             "| loss | " + " | ".join(heading for _, heading, _ in COLUMNS) + " |",
             "| --- |" + " ---: |" * len(COLUMNS)]
    for name, scores in rows:
        lines.append(f"| {name} | " + " | ".join(fmt.format(scores[key]) for key, _, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def ablation(cfg, test_data=None, test_limit=0):
    """Train every loss variant of LOSSES with the settings `cfg` (a Config; its loss is ignored),
    score them on `test_limit` held-out digits (0: all) of `test_data`, and write ablation.md and
    ablation.png into cfg.out. Returns [(loss, scores)]."""
    generators = {loss: train_variant(cfg, loss) for loss in reversed(LOSSES)}  # l1 first, pix2pix last
    images, labels, where = held_out_digits(cfg, test_data, test_limit)
    classifier = load_or_train_classifier()
    real = to_unit_range(images[:8])                       # the picture: 8 digits with the scored holes
    masked = np.asarray(make_src(cfg.task, real, seed=(cfg.seed, 0)))
    rows, outputs = [], {}
    for loss, path in generators.items():
        generator = keras.models.load_model(path, compile=False)
        rows.append((loss, score_generator(generator, images, labels, classifier, seed=cfg.seed, task=cfg.task)))
        outputs[loss] = generator.predict(masked, verbose=0)
    table = markdown_table(rows, where, cfg)
    with open(os.path.join(cfg.out, "ablation.md"), "w") as f:
        f.write(table)
    save_image(comparison_grid([masked, *outputs.values(), real], ["input", *outputs, "real"]),
               os.path.join(cfg.out, "ablation.png"))
    print("\n" + table + f"\nWritten: {os.path.join(cfg.out, 'ablation.md')}, {os.path.join(cfg.out, 'ablation.png')}")
    return rows
