"""Translate new images with a trained generator, one file or a whole folder:

    python pix2pix.py predict --model runs/facades/generator.keras --input photos/ --output translated/

Each input is read as the run read its validation images (resized to the generator's size, or
centre-cropped for a run with --load-size 0), translated, and written as a PNG with the input's
name (a.jpg -> a.png) into --output. The run's settings come from config.json beside the model,
so no training flag needs repeating; a generator without one is used with the defaults.

BatchNorm and dropout at inference (--mode): "paper" runs the nets as in training, as the paper
does at test time (dropout on, BatchNorm with the statistics of the batch, `batch_size` images of
the run at a time); "eval" turns dropout off and uses BatchNorm's moving averages. The default,
"auto", picks "paper" for runs trained with batch size 1 (the paper's; their moving averages
follow the last few images only) and "eval" for larger batches. Either way BatchNorm's moving
statistics are never changed.
"""
import os

import numpy as np

from config import INFERENCE_MODES, RunFiles
from folder_ds import IMAGE_SUFFIXES, image_files, image_info, prepare, read_image
from utils import check_images, load_generator
from visual import save_image, to_uint8

CHUNK = 16  # images read and translated at a time


def translate(generator, images, batch_size=64, mode="eval"):
    """Run `generator` on `images` (float [n, h, w, c] in [-1, 1], checked against the generator's
    input), `batch_size` at a time. Returns float32 numpy [n, h, w, out_channels] in [-1, 1].

    mode "eval": dropout off, BatchNorm normalises with its moving averages; deterministic.
    mode "paper": the paper's test-time policy, the nets run exactly as in training: dropout on,
    BatchNorm normalises with the statistics of each batch (pass the training batch size; with 1
    each image is normalised on its own, as the paper's batch-1 nets always were). BatchNorm's
    moving statistics are restored afterwards: inference never changes them."""
    if mode not in INFERENCE_MODES:
        raise ValueError(f"mode must be one of {', '.join(INFERENCE_MODES)}, got {mode!r}")
    src = check_images(images, "images", generator.input_shape[1:])
    moving = [v for v in generator.non_trainable_variables if "moving" in v.path]  # BatchNorm's averages
    saved = [v.numpy() for v in moving]
    try:
        return np.concatenate([np.asarray(generator(src[i:i + batch_size], training=mode == "paper"))
                               for i in range(0, len(src), batch_size)])
    finally:
        for variable, value in zip(moving, saved):
            variable.assign(value)


def input_files(path):
    """[path] for a file, or the image files in a folder; FileNotFoundError if there are none."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--input {path} does not exist")
    files = image_files(path)
    if not files:
        splits = [s for s in ("train", "val", "test") if os.path.isdir(os.path.join(path, s))]
        hint = f"; it holds {'/ '.join(splits)}/: point --input at one of them" if splits else ""
        raise FileNotFoundError(f"--input {path}: no image files ({', '.join(IMAGE_SUFFIXES)}){hint}")
    return files


def output_paths(files, folder):
    """PNG paths in `folder` named after `files`; ValueError if two would collide or one would
    overwrite an input."""
    outputs = [os.path.join(folder, os.path.splitext(os.path.basename(f))[0] + ".png") for f in files]
    seen = {}
    for source, out in zip(files, outputs):
        if out in seen:
            raise ValueError(f"{seen[out]} and {source} would both be written to {out}; rename one")
        seen[out] = source
    inputs = {os.path.realpath(f) for f in files}
    clash = next((out for out in outputs if os.path.realpath(out) in inputs), None)
    if clash:
        raise ValueError(f"--output would overwrite the input {clash}; choose another --output folder")
    return outputs


def check_inputs(files, img_shape, load_size=286, pairs=False):
    """Read every file's header before anything is written: ValueError naming a file that is not
    an image, an odd-width one with `pairs`, or (for --load-size 0 runs) one smaller than the
    generator's window. Prints a note when the files' shapes suggest --pairs is wrong, and when
    resizing will change their aspect ratio."""
    height, width, _ = img_shape
    double_wide, reshaped = [], []
    for path in files:
        file_width, file_height, _ = image_info(path)
        if pairs and file_width % 2:
            raise ValueError(f"{path}: --pairs needs A|B images of even width, got {file_width}x{file_height}")
        if not load_size and min(file_height, file_width // (2 if pairs else 1)) < min(height, width):
            raise ValueError(f"{path} is {file_width}x{file_height}, smaller than the generator's "
                             f"{width}x{height} window (the run used --load-size 0: crop, no resize)")
        double_wide.append(file_width == 2 * file_height)
        input_width = file_width // (2 if pairs else 1)
        if load_size and abs(input_width * height - file_height * width) > 0.01 * file_height * width:
            reshaped.append(f"{path} ({input_width}x{file_height})")
    if reshaped:
        print(f"note: {reshaped[0]}{f' and {len(reshaped) - 1} more' if len(reshaped) > 1 else ''} will be "
              f"resized to the generator's {width}x{height}, which changes the aspect ratio; crop them to "
              f"{width}:{height} first to keep their proportions")
    if pairs and not all(double_wide):
        print(f"note: with --pairs each image is cut in two halves, but {files[double_wide.index(False)]} is "
              f"not twice as wide as high; drop --pairs if the inputs are single images")
    if not pairs and all(double_wide) and height == width:
        print(f"note: the inputs are twice as wide as high, like A|B pairs; add --pairs to translate one "
              f"half, as the run trained on (now each whole image is resized to {width}x{height})")


def unusual_inputs(src, task, hole_min=10):
    """Notes on inputs (float32 [n, h, w, c] in [-1, 1]) that an MNIST-task generator will not read
    as its training inputs: {kind: [indices]} for "dark_on_light" (more light than dark pixels,
    where MNIST has white strokes on black) and, for inpainting, "no_hole" (fewer mid-grey pixels,
    |v| < 0.02, than the smallest training hole)."""
    found = {"dark_on_light": [], "no_hole": []}
    if task is None:  # a folder run: any picture goes
        return found
    for i, image in enumerate(np.asarray(src)):
        if image.mean() > 0:
            found["dark_on_light"].append(i)
        if task == "inpaint" and np.sum(np.abs(image[..., 0]) < 0.02) < hole_min ** 2:
            found["no_hole"].append(i)
    return found


UNUSUAL = {"dark_on_light": "is dark on light, but the model learned white strokes on black: invert it "
                            "(255 - pixel) first",
           "no_hole": "has no mid-grey hole: an inpainting model fills the pixels set to grey 128 (0.0), "
                      "paint the hole in that grey, not black or white"}


def load_inputs(files, img_shape, load_size=286, pairs=False, direction="AtoB"):
    """float32 [n, *img_shape] in [-1, 1]: each file read with the generator's channels and
    brought to its size (folder_ds.prepare). pairs: each file is an A|B pair; the half that
    `direction` names as input is used. Check the files first with check_inputs."""
    height, width, channels = img_shape
    images = []
    for path in files:
        image = read_image(path, channels)
        if pairs:
            half = image.shape[1] // 2
            image = image[:, :half] if direction == "AtoB" else image[:, half:]
        images.append(np.asarray(prepare(image, (height, width), load_size)))
    return np.stack(images)


def auto_mode(settings):
    """--mode auto for a run's settings (config.json): "paper" for runs trained with batch size 1,
    whose BatchNorm moving averages follow only the last few images, else "eval"."""
    return "paper" if settings.get("batch_size") == 1 else "eval"


def predict(model_path, input_path, output_folder, mode="auto", pairs=False):
    """Translate `input_path` (file or folder) with the generator in `model_path` into PNGs in
    `output_folder`; returns the paths written."""
    run = RunFiles.of_model(model_path)
    if os.path.isdir(model_path):  # a run's folder: its generator
        model_path = run.generator
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"--model {model_path} does not exist")
    if os.path.exists(output_folder) and not os.path.isdir(output_folder):
        raise ValueError(f"--output {output_folder} is a file; give a folder for the PNGs")
    files = input_files(input_path)
    outputs = output_paths(files, output_folder)
    generator = load_generator(model_path)
    settings = run.settings()
    if not settings:
        print(f"note: no config.json beside {model_path}: assuming the defaults (--direction AtoB, images "
              f"resized whole, eval mode unless --mode paper)")
    if mode == "auto":
        mode = auto_mode(settings)
    elif mode == "eval" and settings.get("batch_size") == 1:
        print("note: this run trained with batch size 1, so BatchNorm's moving averages follow only its last "
              "few images; eval mode can wash the outputs out (--mode paper, the default here, does not)")
    batch_size = (settings.get("batch_size") or 1) if mode == "paper" else CHUNK
    chunk_size = max(CHUNK, batch_size)
    img_shape = generator.input_shape[1:]
    load_size = settings.get("load_size", 286)
    check_inputs(files, img_shape, load_size, pairs)
    print(f"Translating {len(files)} image(s) to {img_shape[0]}x{img_shape[1]} with {model_path} "
          f"({mode} mode: {'dropout on, batch statistics' if mode == 'paper' else 'no dropout, moving averages'})")
    os.makedirs(output_folder, exist_ok=True)
    unusual = {kind: [] for kind in UNUSUAL}
    for start in range(0, len(files), chunk_size):
        chunk = slice(start, start + chunk_size)
        src = load_inputs(files[chunk], img_shape, load_size, pairs, settings.get("direction", "AtoB"))
        for kind, indices in unusual_inputs(src, settings.get("task"), settings.get("hole_min", 10)).items():
            unusual[kind] += [files[start + i] for i in indices]
        for image, path in zip(to_uint8(translate(generator, src, batch_size, mode)), outputs[chunk]):
            save_image(image, path)
    for kind, names in unusual.items():
        if names:
            more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            print(f"note: {names[0]}{more} {UNUSUAL[kind]}")
    print(f"Wrote {len(outputs)} PNG(s) into {output_folder}")
    return outputs
