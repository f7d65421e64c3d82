"""Score a generator trained on a folder of pairs on your own test split, and show where it fails:

    python pix2pix.py evaluate --model runs/facades --data facades

The pairs are read as training reads them (folder_ds.py: A|B files, or A/ and B/ folders): the
test/ split of --data, else its val/ split, else the pairs directly in it. Each pair is prepared
with the run's settings from the config.json beside the model: its --direction says which side
is the input, and both images are brought to the generator's size as `predict` brings its inputs
(resized whole, or the centre window for --load-size 0). The generator runs as `predict` runs it
(`generate`, the one place that does).

Scores, for each pair and as the mean over the pairs: L1 ([-1, 1] units, 0 best), PSNR (dB) and
SSIM (1 best) over the whole image, evaluate.py's metrics. Over the whole set: FID and KID
(Heusel et al. 2017, Binkowski et al. 2018) between InceptionV3 features of the generated and the
target images, with Keras' ImageNet weights (downloaded once, 88 MB, into ~/.keras/models);
offline, a note says they are left out and every other score is still written. They are not the
numbers of papers that use TF-GAN's or pytorch-fid's Inception weights: compare your own runs.
Writes scores.json and the results page index.html (results_page.py), beside the model or in --out.
"""
import os

import keras
import numpy as np
import tensorflow as tf

from config import Config, RunFiles
from tasks import grey_to_hole
from tools.evaluate import frechet_distance, kernel_distance, l1, psnr, ssim
from tools.folder_ds import pairs_ds
from tools.image_files import check_pairs, find_pairs, has_split, image_info
from tools.predict import auto_mode, translate
from tools.results_page import thumbnail, write_page
from utils import load_generator, write_json
from visual import to_uint8

INCEPTION_SIDE = 299  # InceptionV3's own input size; FID and KID resize every image to it
PAGE_ROWS = 1000      # the results page shows every pair up to this many, worst first
CHUNK = 16            # pairs read and scored at a time


# ---------------------------------------------------------------------------------------------
# The test pairs, and the generator's outputs
# ---------------------------------------------------------------------------------------------

def scoring_pairs(root):
    """(pairs, folder): the pairs to score under `root` (image_files.find_pairs) and the folder they
    are in: its test/ split, else val/, else the pairs directly in it. An error naming the folder
    when it holds no targets: A/ without B/ (or the reverse), single images instead of A|B files,
    or only a train/ split."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"--data {root}: no such folder of test pairs")
    sides = [side for side in "AB" if os.path.isdir(os.path.join(root, side))]
    if len(sides) == 1:
        raise ValueError(f"--data {root} holds {sides[0]}/ but no {'AB'.replace(sides[0], '')}/: evaluate "
                         f"needs a target for every input (A|B files, or A/ and B/ folders)")
    split = next((s for s in ("test", "val") if has_split(root, s)), "train")
    if split == "train" and has_split(root, "train"):
        raise ValueError(f"--data {root} holds train/ but no test/ or val/: score pairs that training never "
                         f"saw (give their folder)")
    pairs = find_pairs(root, split)
    folder = os.path.dirname(pairs[0].a_path)
    if pairs[0].b_path is not None:  # A/ and B/: name both
        folder += f" and {os.path.dirname(pairs[0].b_path)}"
    for pair in pairs if pairs[0].b_path is None else []:
        width, height, _ = image_info(pair.a_path)
        if width <= height:
            raise ValueError(f"--data {folder} holds single images, not A|B pairs ({pair.a_path} is "
                             f"{width}x{height}): evaluate needs targets, the right half of each file or a B/ "
                             f"folder (`predict` translates single images)")
    return pairs, folder


def generate(generator, src, run):
    """The generator's outputs for `src` (float32 [n, h, w, c] in [-1, 1], at its input size):
    float32 [n, h, w, out_channels] in [-1, 1], run as `predict` runs this run's generator: in
    predict.auto_mode of the `run` (its Config, or None), one image at a time in paper mode. The one
    place here that runs the generator."""
    mode = auto_mode(run)
    return translate(generator, src, batch_size=1 if mode == "paper" else CHUNK, mode=mode)


# ---------------------------------------------------------------------------------------------
# InceptionV3 features: FID and KID
# ---------------------------------------------------------------------------------------------

def inception_extractor(weights="imagenet", side=INCEPTION_SIDE):
    """InceptionV3 without its classifier, average-pooled: float32 [n, side, side, 3] in [-1, 1]
    (its own preprocessing's range) -> [n, 2048]. weights="imagenet" downloads them once into
    Keras' cache; None: random weights (tests; side >= 75)."""
    return keras.applications.InceptionV3(include_top=False, pooling="avg", weights=weights,
                                          input_shape=(side, side, 3))


def load_inception():
    """(extractor, None) with ImageNet weights, or (None, note) when they cannot be had (offline)."""
    try:
        return inception_extractor(), None
    except Exception as e:  # Keras raises a bare Exception for a failed download
        reason = (str(e).strip().splitlines() or [""])[0].rsplit(" -- ", 1)[-1][:200]  # the cause, not the URL
        return None, (f"FID and KID left out: Keras could not download InceptionV3's ImageNet weights into "
                      f"~/.keras/models ({reason}); every other score is written")


def inception_features(extractor, images, batch_size=32):
    """float32 [n, h, w, c] in [-1, 1] (c = 1 or 3; grey repeated to RGB) -> float32 [n, 2048]:
    the `extractor`'s features of the images resized (bilinear, antialiased) to its input size."""
    side = extractor.input_shape[1:3]
    images = np.asarray(images, np.float32)
    rgb = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
    resized = tf.clip_by_value(tf.image.resize(rgb, side, antialias=True), -1.0, 1.0)
    # Called directly, batch by batch: predict() would compile the net anew for each batch size.
    return np.concatenate([np.asarray(extractor(resized[i:i + batch_size], training=False))
                           for i in range(0, len(rgb), batch_size)])


def set_distances(fake_features, target_features):
    """{"fid": ..., "kid": ...} of two feature sets [n, d] (n >= 2): evaluate's Frechet and kernel
    distances (0: alike; KID is unbiased, so it may dip just below 0)."""
    return {"fid": frechet_distance(fake_features, target_features),
            "kid": kernel_distance(fake_features, target_features)}


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------

def score_pairs(generator, pairs, run, extractor=None):
    """Run `generator` on `pairs` (image_files.Pair), prepared with the `run`'s settings (its Config;
    None: the defaults), and score
    each output against its target. Returns (means, rows, features): means {"l1", "psnr", "ssim"}
    over the pairs; rows one dict per pair in their order (name, images: input, generated, target
    as uint8 thumbnails, and its l1, psnr, ssim); features (generated, target) [n, 2048] of the
    `extractor`, or None without one."""
    height, width, in_channels = generator.input_shape[1:]
    cfg = run or Config()
    direction = cfg.direction
    channels = (in_channels, generator.output_shape[-1])
    ds = pairs_ds(pairs, CHUNK, channels if direction == "AtoB" else channels[::-1], training=False,
                  direction=direction, crop_size=(height, width), load_size=cfg.load_size)
    rows, features = [], ([], [])
    for src, target in ds:
        src, target = np.asarray(src), np.asarray(target)
        if cfg.task == "inpaint":  # test inputs with a hole painted in grey, as predict reads them
            src = grey_to_hole(src)
        fake = generate(generator, src, run)
        scores = {name: metric(fake, target, per_image=True) for name, metric in
                  (("l1", l1), ("psnr", psnr), ("ssim", ssim))}
        for i in range(len(src)):
            rows.append({"name": pairs[len(rows)].name, **{k: float(v[i]) for k, v in scores.items()},
                         "images": [thumbnail(to_uint8(a[i])) for a in (src, fake, target)]})
        if extractor is not None:
            features[0].append(inception_features(extractor, fake))
            features[1].append(inception_features(extractor, target))
    means = {key: float(np.mean([row[key] for row in rows])) for key in ("l1", "psnr", "ssim")}
    return means, rows, (tuple(np.concatenate(f) for f in features) if extractor is not None else None)


def pairs_page(files, scores, rows, model_path):
    """Write the results page of `rows` (score_pairs), worst L1 first, with a summary of `scores`."""
    worst = sorted(rows, key=lambda row: -row["l1"])[:PAGE_ROWS]
    columns = (("l1", "L1", "{:.4f}"), ("psnr", "PSNR dB", "{:.2f}"), ("ssim", "SSIM", "{:.3f}"))
    distances = (f"FID {scores['fid']:.2f}, KID {scores['kid']:.4f}" if "fid" in scores else scores["note"])
    summary = [f"generator: {model_path}; {scores['pairs']} test pairs from {scores['data']} "
               f"({scores['direction']}, {scores['size'][0]}x{scores['size'][1]}, {scores['mode']} mode)",
               f"means over the pairs: L1 {scores['l1']:.4f}, PSNR {scores['psnr']:.2f} dB, "
               f"SSIM {scores['ssim']:.3f}; {distances}",
               f"rows: {len(worst)} of {len(rows)} pairs, the largest L1 first; click a heading to sort"]
    return write_page(files, "pix2pix evaluate: your test pairs", summary, columns, worst)


def evaluate_pairs(model_path, data, out=None, json_path=None, limit=0, fid=True, extractor=None):
    """Score the generator in `model_path` (a generator.keras, or its run folder) on the test pairs
    of `data` (scoring_pairs; the first `limit`, 0: all), print the means, and write scores.json
    (or `json_path`) and the results page into `out`, else the run folder. fid=False leaves FID
    and KID out; `extractor`: a feature model to use instead of InceptionV3 (tests). Returns the
    scores: means, "per_pair" (name, l1, psnr, ssim), and fid, kid or a "note" saying why not."""
    model_path = RunFiles.generator_of(model_path)
    pairs, folder = scoring_pairs(data)
    pairs = pairs[:limit] if limit else pairs
    generator = load_generator(model_path)
    run = Config.from_run(model_path)
    if run is None:
        print(f"note: no config.json beside {model_path}: assuming --direction AtoB, images resized whole")
    cfg = run or Config()
    height, width = generator.input_shape[1:3]
    check_pairs(pairs, min(height, width), cfg.load_size)  # names a bad file first
    note = None if fid else "FID and KID left out (--no-fid)"
    if fid and extractor is None:
        extractor, note = load_inception()
    if extractor is not None and len(pairs) < 2:
        extractor, note = None, "FID and KID left out: they need at least 2 pairs"
    print(f"Scoring {len(pairs)} pair(s) of {folder} with {model_path}")
    means, rows, features = score_pairs(generator, pairs, run, extractor)
    scores = {"pairs": len(rows), "data": folder, "direction": cfg.direction,
              "size": [height, width], "mode": auto_mode(run), **means,
              **(set_distances(*features) if features else {"note": note}),
              "per_pair": [{k: row[k] for k in ("name", "l1", "psnr", "ssim")} for row in rows]}
    distances = f", FID {scores['fid']:.2f}, KID {scores['kid']:.4f}" if features else ""
    print(f"Means over {len(rows)} pairs: L1 {means['l1']:.4f}, PSNR {means['psnr']:.2f} dB, "
          f"SSIM {means['ssim']:.3f}{distances}")
    if note:
        print(f"note: {note}")
    files = RunFiles(out) if out else RunFiles.of_model(model_path)
    write_json(scores, json_path or files.scores)
    page = pairs_page(files, scores, rows, model_path)
    print(f"Scores written to {json_path or files.scores}; results page, worst first: {page}")
    return scores
