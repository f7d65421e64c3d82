"""Translate new images with a trained generator, one file or a whole folder:

    python pix2pix.py predict --model runs/facades/generator.keras --input photos/ --output translated/

Each input is translated and written as a PNG with the input's name (a.jpg -> a.png) into
--output. The run's settings come from config.json beside the model, so no training flag needs
repeating; a generator without one is used with the defaults.

Size (--size): "keep" (the default for runs on folders of pairs) translates each image at its own
size and aspect ratio, 300x300 or 1920x1080 alike, and writes an output of exactly that size. The
U-Net is fully convolutional: `any_size` rebuilds the saved generator with an input of any height
and width, `translate_image` mirrors the image at its edges to a size the U-Net takes, translates
it whole or in overlapping tiles (--tile, blended seams) and crops back. "train" (the default for
MNIST runs, whose 28x28 nets mean nothing on a photo) reads each input as the run read its
validation images: resized to the generator's size, or centre-cropped for a run with --load-size 0.

BatchNorm and dropout at inference (--mode): "paper" runs the nets as in training, as the paper
does at test time (dropout on, BatchNorm with the statistics of the batch, `batch_size` images of
the run at a time); "eval" turns dropout off and uses BatchNorm's moving averages. The default,
"auto", picks "paper" for runs trained with batch size 1 and no weight average (the paper's; their
moving averages follow the last few images only) and "eval" for the others: larger batches, or a
saved generator that is an average of G's weights (--ema), moving statistics averaged too, which
scored better in eval mode at the paper's scale (docs/results.md). Either way BatchNorm's moving
statistics are never changed.
"""
import os

import keras
import numpy as np

from config import INFERENCE_MODES, WHOLE_IMAGE_PIXELS, Config, RunFiles
from tasks import GREY_TOLERANCE, grey_to_hole
from tools.folder_ds import prepare, read_image
from tools.image_files import first_and_count, image_info, input_files
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



# ---------------------------------------------------------------------------------------------
# Any size: the whole image at once, or in overlapping tiles
# ---------------------------------------------------------------------------------------------

def any_size(generator):
    """The same generator, same weights, taking images of any height and width: rebuilt from its
    config with a [None, None, None, c] input, for any functional model of built-in layers. (The
    saved generator.keras keeps its training size, so plain Keras loads it as it is.)"""
    config = generator.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            shape = layer["config"]["batch_shape"]
            layer["config"]["batch_shape"] = [shape[0], None, None, shape[-1]]
    model = type(generator).from_config(config)
    model.set_weights(generator.get_weights())
    return model


def size_step(generator):
    """The generator's total stride: the product of its downsampling layers' strides (2**depth for
    a U-Net: 32 at 28x28, 256 at 256x256). It takes its training size plus multiples of this."""
    step = 1
    for layer in generator.layers:
        if hasattr(layer, "strides") and not isinstance(layer, keras.layers.Conv2DTranspose):
            step *= layer.strides[0]
    return step


def fit_padding(side, train_side, step):
    """(before, after): the fewest pixels that bring `side` to a side the generator takes
    (train_side plus a multiple of `step`, the smallest such side >= `side`), split evenly."""
    extra = (train_side - side) % step
    return extra // 2, extra - extra // 2


def tile_starts(side, tile, step):
    """Top (or left) edges of `tile`-pixel windows covering `side` pixels: 0, then one every stride,
    the last flush with the end. Neighbours overlap by at least a quarter tile; the stride is a
    multiple of `step` where it can be, so every tile sits on the whole image's grid of strides and
    gives the whole image's result away from its borders (eval mode)."""
    if side <= tile:
        return [0]
    stride = tile - tile // 4
    stride = stride // step * step or stride
    return [*range(0, side - tile, stride), side - tile]


def blend_weights(height, width, ramp):
    """float32 [height, width, 1]: 1 in the middle, falling linearly over the `ramp` pixels at each
    edge to 1 / (ramp + 1), so overlapping tiles fade into each other (never 0: an image edge is
    covered by one tile only)."""
    def profile(n):
        distance = np.minimum(np.arange(1, n + 1), np.arange(n, 0, -1))  # 1 at the edges
        return np.minimum(1.0, distance / (ramp + 1))
    return np.outer(profile(height), profile(width)).astype(np.float32)[..., None]


def translate_tiles(model, image, tile, step, mode="eval", batch_size=CHUNK):
    """float [h, w, c] in [-1, 1], of sides the generator takes -> float32 [h, w, out_c]: translated
    in windows of about tile x tile pixels (rounded to sides it takes), `batch_size` at a time,
    overlapping windows blended (blend_weights). model: any_size(generator)."""
    height, width = image.shape[:2]
    tile_h, tile_w = (min(side, tile + (side - tile) % step) for side in (height, width))
    corners = [(y, x) for y in tile_starts(height, tile_h, step) for x in tile_starts(width, tile_w, step)]
    weights = blend_weights(tile_h, tile_w, max(tile_h, tile_w) // 4)
    total, norm = None, np.zeros((height, width, 1), np.float32)
    for i in range(0, len(corners), batch_size):
        batch = corners[i:i + batch_size]
        fakes = translate(model, np.stack([image[y:y + tile_h, x:x + tile_w] for y, x in batch]), batch_size, mode)
        total = np.zeros((height, width, fakes.shape[-1]), np.float32) if total is None else total
        for (y, x), fake in zip(batch, fakes):
            total[y:y + tile_h, x:x + tile_w] += weights * fake
            norm[y:y + tile_h, x:x + tile_w] += weights
    return total / norm


def translate_image(model, image, train_size, step, tile=0, mode="eval", batch_size=CHUNK):
    """One image at its own size: float [h, w, c] in [-1, 1] -> float32 [h, w, out_c] in [-1, 1].
    The image is mirrored at its edges to sides the generator takes (fit_padding), translated
    whole (tile 0) or in overlapping tiles of about `tile` pixels, and cropped back to h x w.
    model: any_size(generator); train_size: its (height, width); step: size_step(generator)."""
    height, width = image.shape[:2]
    pads = [fit_padding(side, train_side, step) for side, train_side in zip((height, width), train_size)]
    padded = np.pad(np.asarray(image, np.float32), [*pads, (0, 0)], mode="symmetric")  # mirror, edge pixel kept
    if tile:
        fake = translate_tiles(model, padded, tile, step, mode, batch_size)
    else:
        fake = translate(model, padded[None], 1, mode)[0]
    return fake[pads[0][0]:pads[0][0] + height, pads[1][0]:pads[1][0] + width]


SOFTWARE = "pix2pix predict"  # the "Software" text of the PNGs predict writes: those it may rewrite


def output_paths(files, folder):
    """PNG paths in `folder` named after `files`; ValueError if two would collide, or one would
    overwrite an input or a file that predict did not write (the user's own: see written_by_predict)."""
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
    theirs = [out for out in outputs if os.path.exists(out) and not written_by_predict(out)]
    if theirs:
        raise ValueError(f"--output would overwrite {first_and_count(theirs)}, which predict did not write; "
                         f"choose another --output folder, or move the file")
    return outputs


def written_by_predict(path):
    """True if `path` is a PNG that predict wrote (its "Software" text field says SOFTWARE)."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.text.get("Software") == SOFTWARE
    except (OSError, ValueError, SyntaxError):
        return False


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
        print(f"note: {first_and_count(reshaped)} will be resized to the generator's {width}x{height}, which "
              f"changes the aspect ratio; crop them to {width}:{height} first to keep their proportions")
    if pairs and not all(double_wide):
        print(f"note: with --pairs each image is cut in two halves, but {files[double_wide.index(False)]} is "
              f"not twice as wide as high; drop --pairs if the inputs are single images")
    if not pairs and all(double_wide) and height == width:
        print(f"note: the inputs are twice as wide as high, like A|B pairs; add --pairs to translate one "
              f"half, as the run trained on (now each whole image is resized to {width}x{height})")


def unusual_inputs(src, task, photos=False):
    """Notes on inputs (float32 [n, h, w, c] in [-1, 1]) that a task's generator will not read
    as its training inputs: {kind: [indices]} for "dark_on_light" (MNIST tasks: more light than
    dark pixels, where MNIST has white strokes on black) and, for inpainting (MNIST or `photos`),
    "no_hole" (not one 3x3 block of the hole's grey: a hole that resizing shrank still counts,
    the grey rim of a stroke does not)."""
    found = {"dark_on_light": [], "no_hole": []}
    if task is None:  # a folder of pairs: any picture goes
        return found
    for i, image in enumerate(np.asarray(src)):
        if image.mean() > 0 and not photos:
            found["dark_on_light"].append(i)
        if task == "inpaint" and not has_hole(image):
            found["no_hole"].append(i)
    return found


def has_hole(image, side=3):
    """True if `image` (float [h, w, c] in [-1, 1]) has a side x side block of pixels all in the
    hole's grey (tasks.grey_to_hole's tolerance)."""
    grey = np.all(np.abs(image) < GREY_TOLERANCE, axis=-1)                # [h, w]
    if min(grey.shape) < side:
        return bool(grey.all())
    blocks = np.lib.stride_tricks.sliding_window_view(grey, (side, side))  # [h - 2, w - 2, 3, 3]
    return bool(blocks.all(axis=(2, 3)).any())


UNUSUAL = {"dark_on_light": "is dark on light, but the model learned white strokes on black: invert it "
                            "(255 - pixel) first",
           "no_hole": "has no mid-grey hole: an inpainting model fills the pixels set to grey 128 (0.0), "
                      "paint the hole in that grey, not black or white"}


def read_input(path, channels, pairs=False, direction="AtoB", task=None):
    """float32 [h, w, channels] in [-1, 1] of one file, read with the generator's channels; with
    `pairs` the file is an A|B pair and the half that `direction` names as input is returned. For
    task "inpaint" the grey painted into the file becomes the hole, 0.0 (tasks.grey_to_hole),
    before any resizing, so that a resized hole stays a hole."""
    image = np.asarray(read_image(path, channels))
    if pairs:
        half = image.shape[1] // 2
        image = image[:, :half] if direction == "AtoB" else image[:, half:]
    return grey_to_hole(image) if task == "inpaint" else image


def load_inputs(files, img_shape, load_size=286, pairs=False, direction="AtoB", task=None):
    """float32 [n, *img_shape] in [-1, 1]: each file read with the generator's channels (read_input:
    for task "inpaint" the painted grey becomes the hole) and brought to its size
    (folder_ds.prepare). pairs: each file is an A|B pair; the half that `direction` names as input
    is used. Check the files first with check_inputs."""
    height, width, channels = img_shape
    return np.stack([load_input(path, (height, width), channels, load_size, pairs, direction, task)
                     for path in files])


def load_input(path, size, channels, load_size=286, pairs=False, direction="AtoB", task=None):
    """One file as load_inputs reads it: float32 [h, w, channels] in [-1, 1] at `size` (h, w)."""
    return fit_to_size(read_input(path, channels, pairs, direction, task), size, load_size, task)


def fit_to_size(image, size, load_size=286, task=None):
    """An input read as read_input reads it (float [H, W, c] in [-1, 1]) brought to the generator's
    `size` (h, w) as folder_ds.prepare brings validation images (unchanged if it has that size). For
    inpainting, every pixel that the resized hole touches is hole (0.0), so that no rim of grey
    blended with the strokes around it is kept as if it were known."""
    if image.shape[:2] == tuple(size):  # prepare would change nothing: a 1:1 resize or crop
        return np.asarray(image, np.float32)
    resized = np.array(prepare(image, size, load_size))
    if task == "inpaint":
        hole = np.all(image == 0.0, axis=-1, keepdims=True).astype(np.float32)  # [H, W, 1] in {0, 1}
        resized[np.asarray(prepare(hole, size, load_size))[..., 0] > 0.02] = 0.0
    return resized


def check_full_size(files, load_size=286, pairs=False, tile=0):
    """For --size keep, before anything is written: ValueError naming a file that is not an image,
    an odd-width one with `pairs`, or (without `tile`) one of more than WHOLE_IMAGE_PIXELS. Prints
    a note when the run resized its training images (load_size) and an input is far larger, so
    that what it shows is larger than in training."""
    scaled = []
    for path in files:
        width, height, _ = image_info(path)
        if pairs and width % 2:
            raise ValueError(f"{path}: --pairs needs A|B images of even width, got {width}x{height}")
        width //= 2 if pairs else 1
        if not tile and width * height > WHOLE_IMAGE_PIXELS:
            raise ValueError(f"{path} is {width}x{height}, {width * height / 1e6:.1f} megapixels: more than the "
                             f"{WHOLE_IMAGE_PIXELS / 1e6:.1f} that predict translates whole; add --tile 512 to "
                             f"translate it in overlapping tiles")
        if load_size and max(width, height) > 2 * load_size:
            scaled.append(f"{path} ({width}x{height})")
    if scaled:
        print(f"note: the run resized its training images to {load_size}x{load_size}, but {first_and_count(scaled)} "
              f"is translated at its own size, where things look larger than in training; downscale it first, or "
              f"use --size train")


def translate_resized(generator, files, outputs, cfg, pairs, mode, batch_size):
    """--size train: translate `files` at the generator's size, CHUNK at a time, into `outputs`;
    returns the unusual_inputs notes {kind: [files]}."""
    img_shape = generator.input_shape[1:]
    unusual = {kind: [] for kind in UNUSUAL}
    chunk_size = max(CHUNK, batch_size)
    for start in range(0, len(files), chunk_size):
        chunk = slice(start, start + chunk_size)
        src = load_inputs(files[chunk], img_shape, cfg.load_size, pairs, cfg.direction, cfg.task)
        notes = unusual_inputs(src, cfg.task, photos=cfg.kind == "photos")
        for kind, indices in notes.items():
            unusual[kind] += [files[start + i] for i in indices]
        for image, path in zip(to_uint8(translate(generator, src, batch_size, mode)), outputs[chunk]):
            save_image(image, path, software=SOFTWARE)
    return unusual


def translate_full_size(generator, files, outputs, cfg, pairs, mode, batch_size, tile=0):
    """--size keep: translate each of `files` at its own size (translate_image) into `outputs`;
    returns the unusual_inputs notes {kind: [files]}."""
    model, step = any_size(generator), size_step(generator)
    *train_size, channels = generator.input_shape[1:]
    unusual = {kind: [] for kind in UNUSUAL}
    for path, output in zip(files, outputs):
        src = read_input(path, channels, pairs, cfg.direction, cfg.task)
        notes = unusual_inputs(src[None], cfg.task, photos=cfg.kind == "photos")
        for kind, found in notes.items():
            unusual[kind] += [path] if found else []
        fake = translate_image(model, src, train_size, step, tile, mode, batch_size)
        save_image(to_uint8(fake[None])[0], output, software=SOFTWARE)
    return unusual


def auto_mode(cfg):
    """--mode auto for a run's Config (None: a generator without its config.json): "paper" for runs
    trained with batch size 1 and no weight average, whose BatchNorm moving averages follow only the
    last few images, else "eval"."""
    return "paper" if cfg is not None and cfg.batch_size == 1 and not cfg.ema else "eval"


def inference_mode(mode, cfg):
    """"eval" or "paper" for --mode `mode` ("auto": auto_mode), with a note when eval is asked of
    a run that auto runs in paper mode (batch size 1, no weight average)."""
    if mode == "auto":
        return auto_mode(cfg)
    if mode == "eval" and auto_mode(cfg) == "paper":
        print("note: this run trained with batch size 1, so BatchNorm's moving averages follow only its last "
              "few images; eval mode can wash the outputs out (--mode paper, the default here, does not)")
    return mode


def predict(model_path, input_path, output_folder, mode="auto", pairs=False, size=None, tile=0):
    """Translate `input_path` (file or folder) with the generator in `model_path` into PNGs in
    `output_folder`; returns the paths written. size: "keep" (each input's own size), "train" (the
    generator's), or None: "train" for MNIST runs, else "keep". tile: with "keep", translate in
    overlapping tiles of about tile x tile pixels (0: whole images)."""
    model_path = RunFiles.generator_of(model_path)
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"--model {model_path} does not exist")
    if os.path.exists(output_folder) and not os.path.isdir(output_folder):
        raise ValueError(f"--output {output_folder} is a file; give a folder for the PNGs")
    if tile < 0 or (tile and size == "train"):
        raise ValueError(f"--tile must be >= 0 and works with --size keep (each image at its own size), got {tile}")
    files = input_files(input_path)
    outputs = output_paths(files, output_folder)
    generator = load_generator(model_path)
    run = Config.from_run(model_path)
    if run is None:
        print(f"note: no config.json beside {model_path}: assuming the defaults (--direction AtoB, each image at "
              f"its own size, eval mode unless --mode paper)")
    cfg = run or Config()
    size = size or ("train" if cfg.kind == "mnist" else "keep")  # an MNIST net knows 28x28 digits only
    mode = inference_mode(mode, run)
    batch_size = cfg.batch_size if mode == "paper" else CHUNK
    img_shape = generator.input_shape[1:]
    if size == "train":
        check_inputs(files, img_shape, cfg.load_size, pairs)
    else:
        check_full_size(files, cfg.load_size, pairs, tile)
    where = (f"at their own size{f' in {tile}x{tile} tiles' if tile else ''}" if size == "keep"
             else f"to {img_shape[0]}x{img_shape[1]}")
    print(f"Translating {len(files)} image(s) {where} with {model_path} "
          f"({mode} mode: {'dropout on, batch statistics' if mode == 'paper' else 'no dropout, moving averages'})")
    os.makedirs(output_folder, exist_ok=True)
    if size == "train":
        unusual = translate_resized(generator, files, outputs, cfg, pairs, mode, batch_size)
    else:
        unusual = translate_full_size(generator, files, outputs, cfg, pairs, mode, batch_size, tile)
    for kind, names in unusual.items():
        if names:
            print(f"note: {first_and_count(names)} {UNUSUAL[kind]}")
    print(f"Wrote {len(outputs)} PNG(s) into {output_folder}")
    return outputs
