"""Folders of paired images for Pix2Pix, in the layouts of the paper's data sets, as tf.data pipelines.

Two layouts (`find_pairs` tells them apart):
- side by side: each file holds one pair, A in the left half and B in the right half, as in the
  facades, maps and edges2shoes sets of the pix2pix site: ROOT/train/1.jpg, ROOT/val/..., or
  the files directly in ROOT;
- A/ and B/: two folders whose files pair up by name (a.jpg in A/ with a.png or a.jpg in B/):
  ROOT/A/train/..., ROOT/B/train/..., or ROOT/A/... and ROOT/B/... without splits.

Conventions (other code relies on them):
- pixels are float32 in [-1, 1], x / 127.5 - 1; a side whose files are all grayscale has 1
  channel, a side with any colour file has 3 (its grayscale files are repeated to RGB, with a
  note naming the first); alpha is dropped;
- files without an image suffix (.png, .jpg, .jpeg, .bmp) are ignored, hidden files too; a file
  with one that cannot be read is an error naming it;
- training (the paper's augmentation): both images resized to load_size x load_size, the same
  random crop_size x crop_size window cut from both, both mirrored left-right together half the
  time (flip=False for maps, text, anything whose meaning mirroring changes). load_size=0 keeps
  the original size and only crops; an image smaller than the crop is then an error naming it.
  Sizes may be non-square: crop_size "HxW" (config.size_hw), load_size per side (config.load_hw).
- validation and inference (`prepare`): resized straight to crop_size x crop_size (whole image,
  no randomness), or, with load_size=0, the centre crop_size x crop_size window.

A folder of single photos (no partners) becomes pairs with a task (config.PHOTO_TASKS, `photos_ds`):
each photo gets the same jitter, then tasks.make_src makes the input from the crop (a hole, its
grey version, its edge map, noise, a low-resolution copy); the crop is the target.
"""
import os

import numpy as np
import tensorflow as tf

from config import HOLE_SIZES, PHOTO_TASKS, load_hw, size_hw
from mnist_ds import endless_index_batches, epoch_steps, fold_seed
from tasks import make_src, src_channels
from tools.image_files import (
    CROP_SIZE,
    LOAD_SIZE,
    check_pairs,
    image_info,
    split_pairs,
)

# ---------------------------------------------------------------------------------------------
# Reading and augmenting (TensorFlow ops, run inside tf.data)
# ---------------------------------------------------------------------------------------------

def read_image(path, channels):
    """Decode an image file into float32 [h, w, channels] in [-1, 1]."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def read_pair(a_path, b_path, a_channels, b_channels):
    """(a, b) float32 [h, w, c] in [-1, 1] of one pair; b_path None: a_path holds A|B."""
    if b_path is None:
        both = read_image(a_path, a_channels)
        half = tf.shape(both)[1] // 2
        return both[:, :half], both[:, half:]
    return read_image(a_path, a_channels), read_image(b_path, b_channels)


def resize(image, size, method="bilinear"):
    """float [h, w, c] -> [size, size, c] (or size = (height, width)), kept in [-1, 1]: "bilinear"
    with antialiasing, or "nearest" (each pixel a copy of the nearest one: a label map's colours
    and a texture's contrast kept, as the TensorFlow tutorial resizes)."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if method == "nearest":
        return tf.image.resize(image, size, method="nearest")
    return tf.clip_by_value(tf.image.resize(image, size, antialias=True), -1.0, 1.0)


def jitter(image, seed, crop_size=CROP_SIZE, load_size=LOAD_SIZE, flip=True, method="bilinear"):
    """The paper's jitter of one image, float [h, w, c]: resize to load_size (config.load_hw; 0:
    keep the size), cut a random crop_size window (N or "HxW"), mirror left-right half the time.
    seed: a stateless pair, so the same seed gives the same crop. Returns [crop_h, crop_w, c]."""
    if load_size:
        image = resize(image, load_hw(load_size, crop_size), method)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_crop(image, [*size_hw(crop_size), tf.shape(image)[-1]], crop_seed)
    image = tf.ensure_shape(image, [*size_hw(crop_size), image.shape[-1]])  # static sides, for the tasks
    return tf.image.stateless_random_flip_left_right(image, flip_seed) if flip else image


def augment(a, b, seed, crop_size=CROP_SIZE, load_size=LOAD_SIZE, flip=True, method="bilinear"):
    """The paper's jitter, the same for both images of a pair: resize both to load_size (0: keep
    the size), cut the same random crop_size window, mirror both or neither. a, b: float
    [h, w, ca], [h, w, cb] of one size. seed: a stateless pair. Returns a [crop, crop, ca], b."""
    a_channels = tf.shape(a)[-1]
    both = jitter(tf.concat([a, b], axis=-1), seed, crop_size, load_size, flip, method)  # [crop, crop, ca + cb]
    return both[..., :a_channels], both[..., a_channels:]


def prepare(image, crop_size=CROP_SIZE, load_size=LOAD_SIZE):
    """Validation/inference size: float [h, w, c] -> [crop_size, crop_size, c] (or crop_size =
    (height, width)), resized whole, or with load_size=0 the centre window (an image smaller than
    the window is an error)."""
    crop_h, crop_w = size_hw(crop_size)
    if load_size:
        return resize(image, (crop_h, crop_w))
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    tf.debugging.assert_greater_equal([height, width], [crop_h, crop_w],
                                      message=f"image smaller than the {crop_h}x{crop_w} crop")
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return image[top:top + crop_h, left:left + crop_w]


# ---------------------------------------------------------------------------------------------
# Pipelines
# ---------------------------------------------------------------------------------------------

def pairs_ds(pairs, batch_size, channels, training=True, direction="AtoB", crop_size=CROP_SIZE,
             load_size=LOAD_SIZE, flip=True, seed=0, first_epoch=0, skip_steps=0, max_epoch_steps=0,
             jitter_resize="bilinear"):
    """tf.data of (src, target) batches, float32 [batch, crop, crop, c] in [-1, 1].

    pairs: from find_pairs; channels: (A channels, B channels) from check_pairs; direction "AtoB"
    makes A the input, "BtoA" makes B the input. Training: an endless stateless stream of epochs
    (order from (seed, epoch), jitter from (seed, item number): a resumed run sees exactly the
    batches it would have seen); n // batch_size batches per epoch, at most max_epoch_steps (0: no
    cap). Validation: one pass in order, no jitter, the last batch possibly smaller.
    """
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction must be AtoB or BtoA, got {direction!r}")
    side_by_side = pairs[0].b_path is None  # find_pairs gives one layout
    a_paths = tf.constant([p.a_path for p in pairs])
    b_paths = None if side_by_side else tf.constant([p.b_path for p in pairs])

    def load(index):
        return read_pair(a_paths[index], None if side_by_side else b_paths[index], *channels)

    def orient(a, b):
        return (a, b) if direction == "AtoB" else (b, a)

    if not training:
        ds = tf.data.Dataset.range(len(pairs)).map(
            lambda i: orient(*(prepare(x, crop_size, load_size) for x in load(i))), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch_size).prefetch(2)
    if batch_size > len(pairs):
        raise ValueError(f"batch size {batch_size} is larger than the {len(pairs)} training pairs")

    def jittered(number, index):
        a, b = load(index)
        return orient(*augment(a, b, fold_seed(seed, 3, number), crop_size, load_size, flip, jitter_resize))

    batches = endless_index_batches(len(pairs), batch_size, seed, first_epoch, skip_steps, max_epoch_steps)
    ds = batches.flat_map(numbered_items(batch_size)).map(jittered, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def numbered_items(batch_size):
    """For flat_map over endless_index_batches: one batch (global step, indices [batch_size]) -> its
    items (item number, index), numbered across the whole run, so each item's jitter has a seed."""
    def items(step, indices):
        return tf.data.Dataset.from_tensor_slices((step * batch_size + tf.range(batch_size, dtype=tf.int64),
                                                   indices))
    return items


def check_photos(photos, task, crop_size=CROP_SIZE):
    """Read every photo's header and return the channels to read them with: 1 if all are
    grayscale, else 3 (grey ones repeated to RGB, with a note). ValueError naming the file for: a
    folder of pairs (A/ and B/), an unreadable image, a photo smaller than the crop on either side
    (its crop is the target: an enlarged photo would teach the generator blur), and, for colorize,
    photos that are all grayscale."""
    crop_h, crop_w = size_hw(crop_size)
    first = {}  # channels -> the first photo read with them
    for photo in photos:
        if photo.b_path is not None:
            raise ValueError(f"{photo.a_path} has a partner {photo.b_path}: a folder of A/ and B/ pairs "
                             f"needs no --task (a task makes pairs from single photos)")
        width, height, channels = image_info(photo.a_path)
        if height < crop_h or width < crop_w:
            raise ValueError(f"{photo.a_path} is {width}x{height}, smaller than --crop-size {crop_size} "
                             f"(width {crop_w}, height {crop_h}); --task {task} crops the photo itself as "
                             f"the target: give a smaller --crop-size or leave the photo out")
        first.setdefault(channels, photo.a_path)
    if task == "colorize" and 3 not in first:
        raise ValueError(f"--task colorize needs colour photos, but all {len(photos)} are grayscale "
                         f"(as {first[1]})")
    if len(first) > 1:
        print(f"note: the photos mix grayscale and colour ({first[1]} is grayscale): grayscale ones are read as RGB")
    return max(first)


def photos_ds(photos, batch_size, channels, task, training=True, crop_size=CROP_SIZE, load_size=LOAD_SIZE,
              flip=True, seed=0, first_epoch=0, skip_steps=0, max_epoch_steps=0, hole_sizes=HOLE_SIZES,
              jitter_resize="bilinear"):
    """tf.data of (src, target) batches that `task` (config.PHOTO_TASKS) makes from single photos:
    target float32 [batch, crop_h, crop_w, channels] in [-1, 1], the photo jittered as pairs are
    (training) or prepared (validation); src = tasks.make_src(task, target), [batch, crop_h,
    crop_w, 1] for colorize and edges, else target's shape. photos: Pairs without partners (from
    split_pairs). The crop, flip, holes and noise are stateless, from (seed, item number) in
    training and (seed, photo index) in validation: a resumed run sees the pairs it would have
    seen, and the validation inputs are the same every epoch."""
    paths = tf.constant([p.a_path for p in photos])

    def pair(target, task_seed):  # [h, w, c] -> (src [h, w, c or 1], target)
        target = tf.ensure_shape(target, [*size_hw(crop_size), channels])  # static sides, for low_resolution
        return make_src(task, target[None], task_seed, hole_sizes)[0], target

    if not training:
        ds = tf.data.Dataset.range(len(photos)).map(
            lambda i: pair(prepare(read_image(paths[i], channels), crop_size, load_size), fold_seed(seed, 5, i)))
        return ds.batch(batch_size).prefetch(2)
    if batch_size > len(photos):
        raise ValueError(f"batch size {batch_size} is larger than the {len(photos)} training photos")

    def jittered(number, index):
        target = jitter(read_image(paths[index], channels), fold_seed(seed, 3, number), crop_size, load_size, flip,
                        jitter_resize)
        return pair(target, fold_seed(seed, 4, number))

    batches = endless_index_batches(len(photos), batch_size, seed, first_epoch, skip_steps, max_epoch_steps)
    ds = batches.flat_map(numbered_items(batch_size)).map(jittered, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def get_folder_ds(root, batch_size=1, val_size=50, direction="AtoB", crop_size=CROP_SIZE,
                  load_size=LOAD_SIZE, flip=True, seed=0, limit=0, first_epoch=0, skip_steps=0, max_epoch_steps=0,
                  val_batch_size=8, verbose=True, task=None, hole_sizes=HOLE_SIZES, jitter_resize="bilinear"):
    """Pipelines for a folder of pairs, or with a `task` of single photos (photos_ds): (train_ds,
    val_ds, steps_per_epoch, (src_channels, target_channels)). Every file is checked (headers
    only) before anything is returned. jitter_resize: how the training jitter resizes (resize)."""
    if load_size and any(load < crop for load, crop in zip(load_hw(load_size, crop_size), size_hw(crop_size))):
        raise ValueError(f"--load-size {load_size} is smaller than --crop-size {crop_size}")
    if task is not None and task not in PHOTO_TASKS:
        raise ValueError(f"--task {task} is an MNIST task; from a folder of photos (--data {root}) "
                         f"the tasks make: {', '.join(PHOTO_TASKS)}")
    train, val = split_pairs(root, val_size, seed, limit)
    if task is not None:
        return get_photos_ds(task, train, val, batch_size, crop_size, load_size, flip, seed, first_epoch,
                             skip_steps, max_epoch_steps, val_batch_size, hole_sizes, root if verbose else None,
                             jitter_resize)
    channels = check_pairs(train + val, crop_size, load_size)
    if verbose:
        print(f"Pairs: {len(train):,} for training and {len(val):,} for validation from {root} "
              f"(A: {channels[0]} channel(s), B: {channels[1]}; {direction})")
    args = dict(channels=channels, direction=direction, crop_size=crop_size, load_size=load_size, seed=seed)
    return (pairs_ds(train, batch_size, flip=flip, first_epoch=first_epoch, skip_steps=skip_steps,
                     max_epoch_steps=max_epoch_steps, jitter_resize=jitter_resize, **args),
            pairs_ds(val, val_batch_size, training=False, **args), epoch_steps(len(train), batch_size, max_epoch_steps),
            channels if direction == "AtoB" else channels[::-1])


def get_photos_ds(task, train, val, batch_size, crop_size, load_size, flip, seed, first_epoch, skip_steps,
                  max_epoch_steps, val_batch_size, hole_sizes, root=None, jitter_resize="bilinear"):
    """get_folder_ds for a folder of single photos (Pairs without partners, split_pairs): the same
    tuple; `root` names the folder in the summary line (None: no line)."""
    channels = check_photos(train + val, task, crop_size)
    if root:
        print(f"Photos: {len(train):,} for training and {len(val):,} for validation from {root} "
              f"({channels} channel(s); --task {task} makes the inputs)")
    args = dict(channels=channels, task=task, crop_size=crop_size, load_size=load_size, seed=seed,
                hole_sizes=hole_sizes)
    return (photos_ds(train, batch_size, flip=flip, first_epoch=first_epoch, skip_steps=skip_steps,
                      max_epoch_steps=max_epoch_steps, jitter_resize=jitter_resize, **args),
            photos_ds(val, val_batch_size, training=False, **args),
            epoch_steps(len(train), batch_size, max_epoch_steps), (src_channels(task, channels), channels))


def write_pairs(a_images, b_images, root, layout="side_by_side", split="train", suffix=".png"):
    """Write uint8 images a_images [n, h, w, c], b_images (same n, h, w) as a pair folder:
    layout "side_by_side" (ROOT/split/i.png holding A|B) or "ab" (ROOT/A/split/i.png, ROOT/B/...).
    Handy for turning arrays into the paper's layout; returns the list of files written."""
    from PIL import Image
    a_images, b_images = np.asarray(a_images, np.uint8), np.asarray(b_images, np.uint8)
    written = []

    def save(array, folder, name):
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name)
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)
        written.append(path)

    for i, (a, b) in enumerate(zip(a_images, b_images)):
        name = f"{i:05d}{suffix}"
        if layout == "side_by_side":
            if a.shape[-1] != b.shape[-1]:
                a, b = (np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x for x in (a, b))
            save(np.concatenate([a, b], axis=1), os.path.join(root, split), name)
        elif layout == "ab":
            save(a, os.path.join(root, "A", split), name)
            save(b, os.path.join(root, "B", split), name)
        else:
            raise ValueError(f"layout must be side_by_side or ab, got {layout!r}")
    return written
