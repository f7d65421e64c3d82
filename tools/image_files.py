"""Image files on disk, read without TensorFlow (PIL and NumPy only), so that the command line can
check them before TensorFlow loads: finding the pairs of a folder (both layouts), reading and
checking each file's header, splitting pairs for validation, and predict's inputs.

    find_pairs(root, split)      the Pair list of a split: A|B files, or A/ and B/ partners by name
    image_info(path)             (width, height, channels), or ValueError naming a damaged file
    check_pairs(pairs)           every header read and checked: the channels each side is read with
    split_pairs(root, val_size)  (train, validation) pairs
    input_files(path)            predict's --input: a file, or the image files of a folder
"""
import os
from dataclasses import dataclass

import numpy as np

from config import IMAGE_SUFFIXES, size_hw

SPLITS = ("train", "val", "test")
LOAD_SIZE, CROP_SIZE = 286, 256  # the paper: resize to 286 x 286, random crop to 256 x 256
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")  # PIL modes read as 1 channel


@dataclass(frozen=True)
class Pair:
    """One training pair on disk: a_path and b_path, or a_path alone for an A|B file."""
    name: str
    a_path: str
    b_path: str = None


# ---------------------------------------------------------------------------------------------
# Finding and checking the files
# ---------------------------------------------------------------------------------------------

def image_files(folder):
    """Sorted paths of the image files (by suffix) directly in `folder`; hidden files skipped."""
    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith(".")
                   and os.path.isfile(os.path.join(folder, n)))
    return [os.path.join(folder, n) for n in names]


def has_split(root, split):
    """True if `root` holds a split sub-folder (ROOT/split, or ROOT/A/split for the A/ B/ layout)."""
    ab = os.path.isdir(os.path.join(root, "A")) and os.path.isdir(os.path.join(root, "B"))
    return os.path.isdir(os.path.join(root, "A", split) if ab else os.path.join(root, split))


def find_pairs(root, split="train"):
    """The pairs of `split` under `root` (layouts in the module docstring), sorted by name.
    Without split sub-folders, the files directly in ROOT (or ROOT/A, ROOT/B) form "train".
    Raises FileNotFoundError for a missing or empty folder, ValueError for an A/ file without a
    B/ partner (or the reverse) or two files of one side with the same name."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: no such folder of image pairs")
    if os.path.isdir(os.path.join(root, "A")) and os.path.isdir(os.path.join(root, "B")):
        folders = [os.path.join(root, side, split) for side in "AB"]
        if not has_split(root, split) and split == "train" and not has_split(root, "val"):
            folders = [os.path.join(root, side) for side in "AB"]
        sides = [_by_stem(folder) for folder in folders]
        for this, other in ((0, 1), (1, 0)):
            lonely = sorted(set(sides[this]) - set(sides[other]))
            if lonely:
                raise ValueError(f"{sides[this][lonely[0]]} has no partner in {folders[other]} (same name, "
                                 f"any image suffix); {len(lonely)} file(s) of {folders[this]} are unpaired")
        pairs = [Pair(stem, sides[0][stem], sides[1][stem]) for stem in sorted(sides[0])]
    else:
        folder = os.path.join(root, split)
        if not os.path.isdir(folder) and split == "train" and not has_split(root, "val"):
            folder = root
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder}: no such folder (expected {root}/{split}/ with A|B images, "
                                    f"or {root}/A/ and {root}/B/)")
        pairs = [Pair(os.path.basename(p), p) for p in image_files(folder)]
        folders = [folder]
    if not pairs:
        hint = ""
        if all(os.path.isdir(os.path.join(folders[0], side)) for side in "AB"):
            hint = f"; it holds A/ and B/: the layout is ROOT/A/{split}/ and ROOT/B/{split}/"
        raise FileNotFoundError(f"{' and '.join(folders)}: no image files ({', '.join(IMAGE_SUFFIXES)}){hint}")
    return pairs


def _by_stem(folder):
    """{file name without suffix: path} of the image files in `folder`."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder")
    found = {}
    for path in image_files(folder):
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in found:
            raise ValueError(f"{found[stem]} and {path}: two files with the same name; which one pairs up?")
        found[stem] = path
    return found


def image_info(path):
    """(width, height, channels) of an image file; ValueError naming the file if it is not a
    readable image: not an image, cut short (a PNG's chunk checksums; a JPEG without its end
    marker is decoded to be sure), or too large to decode (PIL's decompression-bomb limit).
    Checked here, before training, so that a damaged file cannot stop a run hours in."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as image:
            width, height = image.size
            channels = 1 if image.mode in GRAY_MODES else 3
            image.verify()  # PNG: reads every chunk and checks its CRC, without decoding
        if path.lower().endswith((".jpg", ".jpeg")) and not jpeg_ends_whole(path):
            with Image.open(path) as image:
                image.load()  # "image file is truncated" if it is
        return width, height, channels
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path}: too large to read ({e})") from e
    except (UnidentifiedImageError, OSError, SyntaxError) as e:  # PIL's verify raises SyntaxError too
        raise ValueError(f"{path}: not a readable image ({e})") from e


def jpeg_ends_whole(path):
    """True if a JPEG file's last bytes hold its end-of-image marker (FF D9), as a whole file's do."""
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - 64))
        return b"\xff\xd9" in f.read()


def check_pairs(pairs, crop_size=CROP_SIZE, load_size=LOAD_SIZE):
    """Read every pair's headers and return (a_channels, b_channels), the channels each side is
    read with. ValueError naming the file for: an unreadable image, an A|B image of odd width,
    A and B of different sizes, and (with load_size=0) an image smaller than the crop."""
    channels = {"A": {}, "B": {}}  # side -> {channels: first file with them}
    not_square = None  # a side-by-side file whose halves are not square
    for pair in pairs:
        width, height, c = image_info(pair.a_path)
        if pair.b_path is None:  # side by side: the two halves are the pair
            if width % 2:
                raise ValueError(f"{pair.a_path}: an A|B pair must have an even width (two halves of the "
                                 f"same size), got {width}x{height}")
            width //= 2
            cb = c
            not_square = not_square or (pair.a_path if width != height else None)
        else:
            b_width, b_height, cb = image_info(pair.b_path)
            if (b_width, b_height) != (width, height):
                raise ValueError(f"{pair.a_path} is {width}x{height} but its partner {pair.b_path} is "
                                 f"{b_width}x{b_height}; A and B must have the same size")
        crop_h, crop_w = size_hw(crop_size)
        if load_size == 0 and (height < crop_h or width < crop_w):
            raise ValueError(f"{pair.a_path}: {'each half ' if pair.b_path is None else ''}is "
                             f"{width}x{height}, smaller than --crop-size {crop_size} (and --load-size 0 "
                             f"does not resize); give --load-size >= {crop_size} to resize it")
        channels["A"].setdefault(c, pair.a_path)
        channels["B"].setdefault(cb, pair.b_path or pair.a_path)
    if not_square:
        print(f"note: {not_square} is read as an A|B pair, but its halves are not square (the paper's "
              f"sets are 2:1 pairs); for single images use the A/ and B/ folder layout")
    for side, seen in channels.items():
        if len(seen) > 1:
            print(f"note: side {side} mixes grayscale and colour images ({seen[1]} is grayscale, {seen[3]} "
                  f"colour): grayscale ones are read as RGB")
    return tuple(max(seen) for seen in channels.values())


def split_pairs(root, val_size, seed=0, limit=0):
    """(train pairs, validation pairs) under `root`: validation from ROOT's val/ split, else its
    test/ split (at most val_size pairs, the first by name), else held out from train (val_size,
    at most a tenth, chosen with `seed`) with a note. limit: keep the first `limit` train pairs."""
    train = find_pairs(root, "train")
    held_out = next((s for s in ("val", "test") if has_split(root, s)), None)
    if held_out:
        val = find_pairs(root, held_out)[:val_size]
    else:
        count = max(1, min(val_size, len(train) // 10))
        if len(train) - count < 1:
            for pair in train:  # a file that is no image is named before it is counted
                image_info(pair.a_path)
            raise ValueError(f"{root}: {len(train)} pair(s) are too few to hold out validation pairs; "
                             f"add a val/ folder or more pairs")
        order = np.random.default_rng(seed).permutation(len(train))
        val = [train[i] for i in sorted(order[:count])]
        train = [train[i] for i in sorted(order[count:])]
        print(f"note: {root} has no val/ or test/ folder; holding out {count} of its pairs for validation")
    return (train[:limit] if limit else train), val


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


def first_and_count(names):
    """The first of `names`, and how many more there are: "a.png (and 2 more)"."""
    return names[0] + (f" (and {len(names) - 1} more)" if len(names) > 1 else "")
