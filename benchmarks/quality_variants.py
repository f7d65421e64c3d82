"""Which settings give the best digits in a first run? Train variants of the default MNIST
inpainting run with several seeds and score each on the 10,000 MNIST test digits.

    python benchmarks/quality_variants.py --test-data ../shared/data/mnist-t10k       # every variant
    python benchmarks/quality_variants.py --only default,ema --seeds 0 1 2 --test-data PATH
    python benchmarks/quality_variants.py --only wide24,default --time-epochs 3   # seconds per epoch

Each (variant, seed) trains in runs/variants/NAME-sN with `tools.training.train` (a finished one is
skipped, an interrupted one resumed: run the command again), and is scored with
`evaluate.score_generator` next to the baseline (the accuracy of a classifier trained on masked
digits, on the test inputs). The table printed at the end, and written to runs/variants/variants.md,
gives each variant's mean over the seeds with the spread (min-max) and its training minutes.
Minutes depend on the machine and on what else runs on it: compare them within one table.
"""
import argparse
import contextlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from config import Config, RunFiles  # noqa: E402

# name: (what it changes, Config.mnist changes). "today" is the default before the search.
# Every variant but "default" names its nets and learning rate in full, so that a later preset does
# not change it. Until the preset took lr 8e-4 (12-03, afternoon) every variant trained with the paper's 2e-4.
# until 12-03: U-Net 64-256, PatchGAN 64 of 2 stride-2 layers (34x34 patches: 3 since 12-03), uncapped
WIDE = dict(gen_filters=64, gen_max_filters=256, disc_filters=64, disc_layers=2, disc_max_filters=512, lr=2e-4)
NARROW = dict(WIDE, gen_filters=32, gen_max_filters=128)  # the U-Net half as wide (the preset of 12-03)
SMALL_D = dict(NARROW, disc_filters=32)  # and the PatchGAN half as wide
F32 = dict(precision="fp32", **WIDE)  # the search's first variants: float32, before "auto" was the default
WIDE24 = dict(WIDE, epochs=24)  # the preset of 12-02: the wider U-Net, 24 epochs
PATCH70 = dict(SMALL_D, lr=8e-4, disc_layers=3, epochs=48)  # the preset of 12-03, late evening
CAP128 = dict(PATCH70, disc_max_filters=128)  # and the PatchGAN capped at 128 filters: the preset since 12-04
VARIANTS = {
    "today": ("no paste, no averaging (the default before this search)",
              dict(no_paste=True, ema=0.0, epochs=15, **F32)),
    "paste": ("known pixels pasted back (nets.unet keep_known)", dict(ema=0.0, epochs=15, **F32)),
    "paste+ema.99": ("paste, EMA of G's weights, decay 0.99", dict(ema=0.99, epochs=15, **F32)),
    "paste+ema.999": ("paste, EMA decay 0.999", dict(ema=0.999, epochs=15, **F32)),
    "paste+ema.99+l100": ("paste, EMA 0.99, lambda 100", dict(ema=0.99, l1_weight=100.0, epochs=15, **F32)),
    "paste+ema.99+l300": ("paste, EMA 0.99, lambda 300", dict(ema=0.99, l1_weight=300.0, epochs=15, **F32)),
    "paste+ema.99+e25": ("paste, EMA 0.99, 25 epochs instead of 15", dict(ema=0.99, epochs=25, **F32)),
    "paste+ema.999+l300": ("paste, EMA 0.999, lambda 300", dict(ema=0.999, l1_weight=300.0, epochs=15, **F32)),
    "paste+ema.99+bf16": ("paste, EMA 0.99, bfloat16 computation (--precision bf16)",
                          dict(ema=0.99, epochs=15, precision="bf16", **WIDE)),
    "paste+ema.99+b32": ("paste, EMA 0.99, batch 32, twice the steps (same digits seen)",
                         dict(ema=0.99, batch_size=32, max_epoch_steps=140, epochs=15, **F32)),
    "default": ("the MNIST preset as it is, whatever it is today (Config.mnist())", {}),
    "default+decay12": ("the preset of 12-02 (U-Net 64-256 filters, 24 epochs), both learning rates decaying "
                        "linearly over the last 12 epochs", dict(**WIDE24, lr_decay_epochs=12)),
    "default+decay6": ("the 12-02 preset, learning rates decaying over the last 6 epochs",
                       dict(**WIDE24, lr_decay_epochs=6)),
    "wide24": ("the preset of 12-02: paste, EMA 0.99, U-Net 64-256 filters, 24 epochs, precision auto", WIDE24),
    "default+g32e44": ("the 12-02 preset with a U-Net half as wide (32 to 128 filters), whose 1.65x faster "
                       "epochs buy 44 epochs in 1.1x the time (the preset since 12-03)",
                       dict(**NARROW, epochs=44)),
    "default+g32e40": ("the 12-02 preset with the U-Net half as wide for 40 epochs: the 12-02 preset's time, "
                       "by --time-epochs (1.65x faster epochs)", dict(**NARROW, epochs=40)),
    "default+d32e44": ("the 12-03 preset with a PatchGAN half as wide (32 to 128 filters): at 28x28 D held "
                       "most of the step's arithmetic, and its steps take 1.67x less time", dict(SMALL_D, epochs=44)),
    "default+d32e56": ("the PatchGAN half as wide, and 56 epochs instead of 44", dict(SMALL_D, epochs=56)),
    "default+g16d32e56": ("both nets narrower still: a U-Net of 16 to 64 filters (its steps about 1.4x faster "
                          "again), the PatchGAN of 32, 56 epochs",
                          dict(SMALL_D, gen_filters=16, gen_max_filters=64, epochs=56)),
    "default+lr4": ("the 12-03 preset (both nets narrow, 56 epochs) with both learning rates doubled to 4e-4: "
                    "its val L1 still falls at epoch 56, so faster steps downhill may buy better digits for free",
                    dict(SMALL_D, epochs=56, lr=4e-4)),
    "default+lr8": ("the 12-03 preset with both learning rates 4x the paper's, 8e-4 (the preset since that "
                    "afternoon)",
                    dict(SMALL_D, epochs=56, lr=8e-4)),
    "default+lr16": ("the 12-03 preset with both learning rates 8x the paper's, 1.6e-3",
                     dict(SMALL_D, epochs=56, lr=1.6e-3)),
    "default+lr8+ema999": ("the preset at lr 8e-4 with the weight average's decay 0.999",
                           dict(SMALL_D, epochs=56, lr=8e-4, ema=0.999)),
    "default+b128": ("the preset of 12-03 afternoon (lr 8e-4) with batches of 128 digits: the same digits per "
                     "epoch in 35 steps instead of 70, each about 1.2x cheaper per digit, at twice the rate (1.6e-3)",
                     dict(SMALL_D, epochs=56, lr=1.6e-3, batch_size=128, max_epoch_steps=35)),
    "default+l300": ("the preset at lr 8e-4 with lambda 300 instead of 1000: the GAN term a larger share of G's loss",
                     dict(SMALL_D, epochs=56, lr=8e-4, l1_weight=300.0)),
    "default+ema98": ("the preset at lr 8e-4 with the weight average's decay 0.98 (0.999 lagged behind)",
                      dict(SMALL_D, epochs=56, lr=8e-4, ema=0.98)),
    "default+dlr2": ("the preset at lr 8e-4 for G with D's rate a quarter of it, 2e-4 (a slower D)",
                     dict(SMALL_D, epochs=56, lr=8e-4, disc_lr=2e-4)),
    "default+dlr16": ("the preset at lr 8e-4 for G with D's rate twice it, 1.6e-3 (a faster D)",
                      dict(SMALL_D, epochs=56, lr=8e-4, disc_lr=1.6e-3)),
    "default+depth4e56": ("the preset at lr 8e-4 with a depth-4 U-Net (a 2x2 bottleneck instead of 1x1), "
                          "whose steps take about a tenth less time", dict(SMALL_D, epochs=56, lr=8e-4, unet_depth=4)),
    "default+beta9": ("the preset at lr 8e-4 with Adam's beta_1 0.9 (Adam's own default) instead of the paper's 0.5",
                      dict(SMALL_D, epochs=56, lr=8e-4, beta_1=0.9)),
    "default+dl3": ("the preset at lr 8e-4 with a PatchGAN of 3 stride-2 layers: 70x70 patches, each logit "
                    "sees the whole 28x28 pair (the preset's 2 layers: 34x34)", dict(SMALL_D, epochs=56, lr=8e-4,
                                                                                   disc_layers=3)),
    "default+dl3e48": ("the PatchGAN of 3 stride-2 layers for 48 epochs instead of 56: its epochs take 1.15x as "
                       "long (14.4 against 12.5 s, --time-epochs 3), so 48 of them take the 56's time",
                       dict(SMALL_D, epochs=48, lr=8e-4, disc_layers=3)),
    "default+dl1": ("the preset at lr 8e-4 with a PatchGAN of 1 stride-2 layer: 16x16 patches, a cheaper D",
                    dict(SMALL_D, epochs=56, lr=8e-4, disc_layers=1)),
    "default+smooth9": ("the preset of 12-04 (70x70 patches, PatchGAN capped at 128 filters, 48 epochs) with "
                        "one-sided label smoothing: D learns to call real pairs 0.9", dict(CAP128, real_label=0.9)),
    "default+shift2": ("the 12-04 preset with each training pair moved by up to 2 pixels each way",
                       dict(CAP128, shift=2)),
    "default+d2step": ("the 12-04 preset with two D steps on each batch before G's step (more time per step)",
                       dict(CAP128, d_steps=2)),
    "default+e4": ("the 12-04 preset stopped after 4 of its 48 epochs: how soon it passes the old default",
                   dict(CAP128, epochs=4)),
    "default+e8": ("the 12-04 preset stopped after 8 epochs", dict(CAP128, epochs=8)),
    "default+fp32": ("the 12-04 preset computing in float32 (--precision fp32) instead of bfloat16 where the CPU "
                     "has it", dict(CAP128, precision="fp32")),
    "default+dmax128": ("the 70x70-patch preset with the PatchGAN's filters capped at 128: its stride-1 block "
                        "(128 -> 256 filters on 4x4 maps) was the step's dearest convolution, a quarter of its "
                        "oneDNN time", CAP128),
}
# Settings that a variant may change but Config has not (tried and rejected, so never made flags):
# applied by extra_settings around pix2pix.build_model.
EXTRA = ("disc_lr", "unet_depth", "real_label", "d_steps", "shift")

SCORES = [("acc_generated", "accuracy", "{:.2%}"), ("acc_input_baseline", "baseline", "{:.2%}"),
          ("frechet_generated", "Fréchet", "{:.3f}"), ("l1_region", "L1 hole", "{:.4f}"),
          ("ssim_region", "SSIM hole", "{:.3f}"), ("grey_region", "grey hole", "{:.1%}"),
          ("l1_outside", "L1 outside", "{:.4f}")]


def train_and_score(name, seed, root, test):
    """Train (or resume, or skip) variant `name` with `seed`; returns its scores with "minutes"."""
    import keras

    from tools.evaluate import score_generator
    changes, extra = split_extra(VARIANTS[name][1])
    cfg = Config.mnist(**changes, seed=seed, verbose=2,
                       out=os.path.join(root, f"{name}-s{seed}"))
    files = RunFiles(cfg.out)
    with extra_settings(**extra):
        minutes = train_timed(cfg)
    saved = os.path.join(cfg.out, "variant_scores.json")  # scored once; delete it to score again
    if os.path.exists(saved):
        with open(saved) as f:
            scores = json.load(f)
    else:
        generator = keras.models.load_model(files.generator, compile=False)
        images, labels, judge, ceiling = test
        scores = score_generator(generator, images, labels, judge, seed=0, baseline=ceiling)
        scores["l1_outside"] = outside_error(generator, images)
        with open(saved, "w") as f:
            json.dump(scores, f)
    print(f"{name} seed {seed}: " + ", ".join(f"{h} {fmt.format(scores[k])}" for k, h, fmt in SCORES)
          + f", {minutes:.1f} min", flush=True)
    return {**scores, "minutes": minutes}


def split_extra(changes):
    """(the Config changes, the EXTRA ones) of a variant's changes."""
    return ({k: v for k, v in changes.items() if k not in EXTRA},
            {k: v for k, v in changes.items() if k in EXTRA})


@contextlib.contextmanager
def extra_settings(disc_lr=None, unet_depth=None, real_label=None, d_steps=None, shift=None):
    """Inside the block, pix2pix.build_model gives D's Adam the rate `disc_lr` (G keeps cfg.lr)
    and builds the U-Net `unet_depth` levels deep (nets.unet's depth); D learns to call real pairs
    `real_label` instead of 1.0 (one-sided label smoothing; G's target stays 1.0); D takes `d_steps`
    updates on each batch before G's one; the MNIST training pairs are moved by up to `shift`
    pixels each way, input and target together (background comes in at the edges). None: unchanged."""
    import functools

    import mnist_ds
    import pix2pix
    saved = (pix2pix.build_model, pix2pix.unet, pix2pix.Pix2Pix.update_discriminator, mnist_ds.task_ds)
    build_model, unet, update_discriminator, task_ds = saved

    def build_with_extras(*args, **kwargs):
        model = build_model(*args, **kwargs)
        if disc_lr:
            model.d_optimizer.learning_rate = disc_lr
        return model

    def update_with_extras(self, src, target, fake):
        bce = pix2pix.bce_with_logits
        if real_label is not None:  # while the step is traced, D's loss sees the smoothed label
            pix2pix.bce_with_logits = lambda label, logits: bce(real_label if label == 1.0 else label, logits)
        try:
            for _ in range((d_steps or 1) - 1):
                update_discriminator(self, src, target, fake)
            return update_discriminator(self, src, target, fake)
        finally:
            pix2pix.bce_with_logits = bce

    def shifted_task_ds(targets, batch_size, training=True, *args, **kwargs):
        ds = task_ds(targets, batch_size, training, *args, **kwargs)
        return ds.map(functools.partial(shift_pairs, pixels=shift)) if training else ds

    pix2pix.build_model = build_with_extras
    pix2pix.Pix2Pix.update_discriminator = update_with_extras
    if unet_depth:
        pix2pix.unet = functools.partial(unet, depth=unet_depth)
    if shift:
        mnist_ds.task_ds = shifted_task_ds
    try:
        yield
    finally:
        pix2pix.build_model, pix2pix.unet, pix2pix.Pix2Pix.update_discriminator, mnist_ds.task_ds = saved


def shift_pairs(src, target, pixels):
    """Each (src, target) pair of a batch moved by the same random offset of up to `pixels` each
    way: [n, h, w, c] in [-1, 1], padded with -1 (background) and cropped back to [n, h, w, c]."""
    import tensorflow as tf
    both = tf.concat([src, target], axis=-1)
    padded = tf.pad(both + 1.0, [[0, 0], [pixels, pixels], [pixels, pixels], [0, 0]]) - 1.0
    moved = tf.map_fn(lambda image: tf.image.random_crop(image, tf.shape(both)[1:]), padded)
    return moved[..., :src.shape[-1]], moved[..., src.shape[-1]:]


def train_timed(cfg):
    """Train the run `cfg` describes to its end with tools.training.train (resumed if it was
    interrupted, skipped if it had finished); returns its training minutes, kept in minutes.json in cfg.out."""
    from tools import training
    timing = os.path.join(cfg.out, "minutes.json")
    if not os.path.exists(timing):
        start = time.time()
        training.train(cfg.replace(resume=os.path.exists(RunFiles(cfg.out).checkpoint)))
        with open(timing, "w") as f:
            json.dump({"minutes": (time.time() - start) / 60}, f)
    with open(timing) as f:
        return json.load(f)["minutes"]


def spread(values, fmt):
    """A table cell: the mean of `values` formatted with `fmt`, and (min-max) if there are several."""
    mean = fmt.format(sum(values) / len(values))
    return mean if len(values) == 1 else f"{mean} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def time_epochs(names, epochs, root, rounds=2):
    """Median seconds per epoch of each variant's nets and settings, in this process: each trains
    1 + `epochs` epochs (the first, which traces the step, is not counted), the variants taking
    turns `rounds` times so that they share the machine's drift. Returns {name: seconds}."""
    import shutil
    import statistics

    import keras

    from tools import training

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    times = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            clock = EpochClock()
            out = os.path.join(root, "timing", name)
            shutil.rmtree(out, ignore_errors=True)
            changes, extra = split_extra(VARIANTS[name][1])
            with extra_settings(**extra):
                training.train(Config.mnist(**{**changes, "epochs": 1 + epochs}, verbose=0, out=out),
                              callbacks=[clock])
            times[name] += clock.seconds[1:]
            print(f"{name}: " + ", ".join(f"{s:.1f}" for s in clock.seconds[1:]) + " s per epoch", flush=True)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def outside_error(generator, images):
    """Mean |output - input| outside the hole (where the input already holds the truth)."""
    import numpy as np

    from mnist_ds import to_unit_range
    from tasks import mask_square
    src, hole = (np.asarray(a) for a in mask_square(to_unit_range(images[:2000]), seed=(0, 0)))
    fake = np.asarray(generator.predict(src, batch_size=256, verbose=0))
    return float(np.abs(fake - src)[hole[..., 0] == 0].mean())


def table(results):
    """Markdown: one row per variant, mean (min-max) over its seeds."""
    lines = ["| variant | seeds | " + " | ".join(h for _, h, _ in SCORES) + " | minutes |",
             "| --- | ---: |" + " ---: |" * (len(SCORES) + 1)]
    for name, runs in results.items():
        cells = [spread([r[key] for r in runs], fmt) for key, _, fmt in [*SCORES, ("minutes", "", "{:.1f}")]]
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}: {VARIANTS[n][0]}" for n in results) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated variant names (default: all): " + ", ".join(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--test-data", help="MNIST test digits (default: $MNIST_PATH, else Keras' download)")
    parser.add_argument("--out", default=os.path.join("runs", "variants"))
    parser.add_argument("--table", action="store_true",
                        help="train nothing: the table of the (variant, seed) runs that finished in --out")
    parser.add_argument("--time-epochs", type=int, default=0, metavar="N",
                        help="train nothing to the end: time N epochs of each variant, taking turns, and print "
                             "the median seconds per epoch (what a variant costs in the 10-minute budget)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    if args.time_epochs:
        medians = time_epochs(names, args.time_epochs, args.out)
        for name, seconds in medians.items():
            epochs = Config.mnist(**split_extra(VARIANTS[name][1])[0]).epochs
            print(f"{name}: {seconds:.1f} s per epoch, {epochs} epochs: about {seconds * epochs / 60:.1f} min")
        return
    from mnist_ds import load_mnist
    from tools.evaluate import classifier_training_set, load_or_train_classifier
    images, labels = load_mnist(args.test_data, split="test", other_split_ok=False)
    training_set = classifier_training_set()
    test = (images, labels, load_or_train_classifier(training_set=training_set),
            load_or_train_classifier(task="inpaint", training_set=training_set))
    if args.table:  # only what has finished
        done = lambda name, seed: os.path.exists(os.path.join(args.out, f"{name}-s{seed}", "minutes.json"))  # noqa: E731
        pairs = {name: [seed for seed in args.seeds if done(name, seed)] for name in names}
    else:
        pairs = {name: args.seeds for name in names}
    results = {name: [train_and_score(name, seed, args.out, test) for seed in seeds]
               for name, seeds in pairs.items() if seeds}
    text = table(results)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "variants.md"), "w") as f:
        f.write(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
