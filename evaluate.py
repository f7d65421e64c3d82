"""Judge an inpainting generator on held-out digits, the way the paper judges its models:
pixel errors inside the hole, and whether an off-the-shelf digit recogniser still reads the
right digit (the MNIST analog of the paper's FCN-score, section 4.2).

    python evaluate.py --model runs/pix2pix/generator.keras --data path/to/mnist-t10k

The held-out digits are MNIST's official test split (--data: Keras' mnist.npz or a folder of the
t10k idx files; default $MNIST_PATH, else Keras' download). The classifier is a small CNN trained
on MNIST training digits and cached in ~/.cache/pix2pix (retrained if missing).
"""
import argparse
import json
import os
import sys

import keras
import numpy as np
from keras import layers

from mnist_ds import HOLE_MAX, HOLE_MIN, load_mnist, mask_square, to_unit_range


def digit_classifier(img_shape=(28, 28, 1)):
    """Small CNN: float32 [n, 28, 28, 1] in [-1, 1] -> logits [n, 10] over the digits 0-9."""
    images = keras.Input(img_shape)
    x = layers.Conv2D(32, 3, activation="relu")(images)          # [n, 28, 28, 1] -> [n, 26, 26, 32]
    x = layers.MaxPooling2D()(layers.Conv2D(64, 3, activation="relu")(x))  # -> [n, 12, 12, 64]
    x = layers.MaxPooling2D()(layers.Conv2D(64, 3, activation="relu")(x))  # -> [n, 5, 5, 64]
    x = layers.Dropout(0.3)(layers.Flatten()(x))
    logits = layers.Dense(10)(layers.Dense(128, activation="relu")(x))
    return keras.Model(images, logits, name="digit_classifier")


def cache_dir():
    """The user's cache folder for this library: $XDG_CACHE_HOME/pix2pix or ~/.cache/pix2pix."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pix2pix")


def load_or_train_classifier(path=None, epochs=6, verbose=True):
    """Load the cached digit classifier, or train one on MNIST training digits and cache it."""
    from utils import save_model
    path = path or os.path.join(cache_dir(), "digit_classifier.keras")
    if os.path.exists(path):
        return keras.models.load_model(path)
    images, labels = load_mnist(split="train", verbose=verbose)
    model = digit_classifier()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if verbose:
        print(f"Training the digit classifier on {len(images):,} digits; cached at {path}")
    model.fit(to_unit_range(images), labels, batch_size=128, epochs=epochs, verbose=0)
    save_model(model, path)
    return model


def accuracy(classifier, images, labels):
    """Fraction of images (float32 [n, 28, 28, 1] in [-1, 1]) that `classifier` labels correctly."""
    predicted = np.argmax(classifier.predict(images, batch_size=512, verbose=0), axis=-1)
    return float(np.mean(predicted == labels))


def inpainting_scores(generator, images, labels, classifier, hole_sizes=(HOLE_MIN, HOLE_MAX), seed=0):
    """Scores of `generator` on digits (uint8 [n, 28, 28]) with fixed seeded holes.

    l1_hole, mse_hole: mean |fake - real| and squared error over hole pixels ([-1, 1] units);
    psnr_hole: 10 log10(2^2 / mse_hole) in dB; grey_hole: fraction of hole pixels of the output that
    are neither ink nor background (|v| < 0.5), a blur measure (compare grey_hole_real);
    acc_masked, acc_generated, acc_real: the classifier's accuracy on input, output and truth.
    """
    real = to_unit_range(images)
    src, hole = (np.asarray(a) for a in mask_square(real, *hole_sizes, seed=(seed, 0)))
    fake = generator.predict(src, batch_size=256, verbose=0)
    in_hole = hole.astype(bool)
    mse = float(np.mean((fake - real)[in_hole] ** 2))
    return {
        "digits": int(len(images)),
        "l1_hole": float(np.mean(np.abs(fake - real)[in_hole])),
        "mse_hole": mse,
        "psnr_hole": float(10 * np.log10(4.0 / max(mse, 1e-10))),
        "grey_hole": float(np.mean(np.abs(fake[in_hole]) < 0.5)),
        "grey_hole_real": float(np.mean(np.abs(real[in_hole]) < 0.5)),
        "acc_masked": accuracy(classifier, src, labels),
        "acc_generated": accuracy(classifier, fake, labels),
        "acc_real": accuracy(classifier, real, labels),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description="Score an inpainting generator on held-out MNIST digits.")
    parser.add_argument("--model", required=True, help="a generator.keras written by pix2pix.py")
    parser.add_argument("--data", help="MNIST test digits: mnist.npz or a folder of t10k idx files")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N test digits (0: all)")
    parser.add_argument("--json", help="also write the scores here (default: beside the model)")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.model):
        parser.error(f"--model {args.model} does not exist")
    generator = keras.models.load_model(args.model, compile=False)
    images, labels = load_mnist(args.data, split="test")
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    scores = inpainting_scores(generator, images, labels, load_or_train_classifier())
    for name, value in scores.items():
        print(f"{name:>15}: {value:.4f}" if isinstance(value, float) else f"{name:>15}: {value}")
    out = args.json or os.path.join(os.path.dirname(os.path.abspath(args.model)), "scores.json")
    from utils import write_json
    write_json(scores, out)
    print(f"Scores written to {out}")


if __name__ == "__main__":
    sys.exit(main())
