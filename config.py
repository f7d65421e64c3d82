"""The settings of a training run, in one place: the Config dataclass with its presets, the
names that the settings choose from, and the file names of a run's output folder.

Which defaults?  `Config()`, `Pix2Pix()` and the builders `unet()` / `patch_discriminator()` use
the paper's settings (lambda 100, batch 1, U-Net filters capped at 512). `Config.paper()` says so
by name. The command line measured two presets and looks at --data to pick one (Config.for_data):
`Config.mnist()`, the lesson's, for every MNIST task, and `Config.folder()`, the paper's settings
plus a weight average, for a folder of images (docs/results.md).
Every preset computes in bfloat16 where the hardware has it (precision "auto"; "fp32" is the
paper's arithmetic), measured to give the same scores faster (docs/speed.md).

Pure Python: importing this module does not import TensorFlow (so `--help` answers at once).
"""
import dataclasses
import importlib.util
import json
import math
import os
import zipfile
from dataclasses import dataclass

LOSSES = ("l1+cgan", "l1+gan", "cgan", "gan", "l1")  # the paper's Table 1 rows; l1+cgan is pix2pix
TASKS = ("inpaint", "edges2digit", "denoise", "superres", "edges2fashion")  # MNIST-sized tasks (tasks.py)
# Tasks whose own settings in Config.mnist differ from the inpainting preset's, each measured
# (docs/results.md). edges2fashion: the paper's first-layer width (a U-Net of 64 to 256 filters, a
# PatchGAN of 64), which beat the digits' half-width nets on every score at 8 epochs, and the paper's
# learning rate, with which that was measured, as was its PatchGAN of 2 stride-2 layers (34x34
# patches; the digits' 70x70 patches were not measured on shoes and bags). denoise: 34x34 patches,
# which drew more real digits than 70x70 ones in three runs under two judges (perhaps because the
# noise is everywhere: small patches judge each stroke's cleanness, large ones the whole digit).
FASHION = dict(gen_filters=64, gen_max_filters=256, disc_filters=64, disc_layers=2, disc_max_filters=512, lr=2e-4)
TASK_PRESETS = {"edges2fashion": FASHION, "denoise": dict(disc_layers=2)}
# What the command line adds to the paper's settings for a folder of images, measured at the paper's
# scale (benchmarks/paper_scale.py; docs/results.md, "The paper's scale"): the saved generator an
# exponential moving average of G's weights.
FOLDER = dict(ema=0.999)
PHOTO_TASKS = ("inpaint", "colorize", "edges", "denoise", "superres")  # --data a folder of single photos
DIRECTIONS = ("AtoB", "BtoA")  # image folders: which side is the input
JITTER_RESIZES = ("bilinear", "nearest")  # image folders: how the jitter resizes to load_size (folder_ds.resize)
STRATEGIES = ("none", "mirrored", "multiworker")  # tf.distribute (distribute.py)
PRECISIONS = ("fp32", "bf16", "fp16", "auto")  # compute precision (distribute.resolve_precision)
INFERENCE_MODES = ("eval", "paper")  # BatchNorm and dropout at inference (predict.translate)
SIZES = ("keep", "train")  # predict --size: the input's own size, or resized to the training size
WHOLE_IMAGE_PIXELS = 2048 * 2048  # predict translates larger images only in tiles (--tile): memory
EXPORT_FORMATS = ("saved_model", "tflite", "onnx")  # python pix2pix.py export --format
HOLE_SIZES = (10, 15)  # inpainting: smallest and largest side of the square hole, pixels
SHIPPED_RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "mnist_inpaint")  # the default run
PAPER_DATASETS = ("cityscapes", "edges2handbags", "edges2shoes", "facades", "maps", "night2day")  # download NAME
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")  # the image files that folders of pairs or photos hold


@dataclass
class Config:
    """Every setting of a training run; one command-line flag each (`python pix2pix.py --help`)."""
    task: str = None              # one of TASKS; for a folder of photos one of PHOTO_TASKS; None: image pairs
    epochs: int = 200             # training epochs; the paper's facades: 200
    max_epoch_steps: int = 0      # an epoch is one pass over the data, at most N steps (0: no cap)
    batch_size: int = 1           # images per step (global under --strategy); the paper: 1
    l1_weight: float = 100.0      # λ, weight of the L1 term in G's loss; the paper: 100
    loss: str = "l1+cgan"         # G's loss, one of LOSSES (the paper's ablation)
    lr: float = 2e-4              # Adam learning rate of both nets; the paper: 2e-4
    beta_1: float = 0.5           # Adam beta_1 of both nets; the paper: 0.5
    data: str = None              # a folder of image pairs, or the MNIST source (mnist_ds.load_mnist)
    direction: str = "AtoB"       # image folders: translate A into B, or B into A
    load_size: int = 286          # image folders: resize before the random crop, N or "HxW" (load_hw; 0: crop only)
    crop_size: int = 256          # image folders: random crop, the nets' size: N (square) or "HxW", as "256x512"
    no_flip: bool = False         # image folders: no random left-right mirroring
    jitter_resize: str = "bilinear"  # image folders: the jitter's resizing, one of JITTER_RESIZES
    out: str = os.path.join("runs", "pix2pix")  # output folder (RunFiles)
    seed: int = 0                 # weights, split, shuffling, holes, jitter
    val_size: int = 50            # images held out for validation and the sample grids
    limit: int = 0                # train on the first N images or pairs only (0: all)
    gen_filters: int = 64         # filters of the U-Net's first layer, doubled per level
    gen_max_filters: int = 512    # cap on the U-Net's filters; the paper: 512
    disc_filters: int = 64        # filters of the PatchGAN's first layer
    disc_layers: int = 0          # stride-2 layers of the PatchGAN (0: the paper's 3, fewer for tiny images)
    disc_max_filters: int = 512   # cap on the PatchGAN's filters; the paper: 512
    hole_min: int = HOLE_SIZES[0]  # inpainting: smallest side of the square hole
    hole_max: int = HOLE_SIZES[1]  # inpainting: largest side
    no_paste: bool = False        # inpainting: G redraws the known pixels too (default: pasted back, unet keep_known)
    ema: float = 0.0              # saved generator = moving average of G's weights with this decay (0: off; paper)
    lr_decay_epochs: int = 0      # decay both learning rates linearly to zero over the last N epochs (0: off; paper)
    tensorboard: bool = False     # also log the epoch's scalars and sample grid for TensorBoard (RunFiles.tensorboard)
    save_every: int = 0           # also checkpoint every N steps within an epoch (0: epoch ends only)
    resume: bool = False          # continue the run saved in `out`
    overwrite: bool = False       # start afresh in an `out` that holds another run
    deterministic: bool = False   # bit-identical results for one seed on one machine (slower)
    jit: bool = False             # compile the step with XLA (GPUs; slower on CPU)
    precision: str = "auto"       # one of PRECISIONS; auto: bf16 compute where the hardware has it, else fp32
    strategy: str = "none"        # one of STRATEGIES
    summary: bool = False         # print both nets' summaries before training
    verbose: int = 1              # Keras progress: 0 silent, 1 bar, 2 a line per epoch

    @classmethod
    def paper(cls, **changes):
        """The paper's settings for a folder of image pairs (its facades run): 200 epochs, batch 1,
        lambda 100, U-Net-256 filters capped at 512, at most 50 validation pairs. For crops smaller
        than 256 the U-Net's cap shrinks with them (twice the crop's shorter side, at least 64): a
        64x64 crop gets 128, not a 117 MB generator. With a `task` (a folder of photos) the
        inpainting holes default to a quarter to a half of the crop's shorter side."""
        short_side = min(size_hw(changes.get("crop_size", cls.crop_size)))
        changes.setdefault("gen_max_filters", min(512, max(64, 2 * short_side)))
        if changes.get("task"):
            changes.setdefault("hole_min", max(1, short_side // 4))
            changes.setdefault("hole_max", max(1, short_side // 2))
        return cls(**changes)

    @classmethod
    def mnist(cls, **changes):
        """The lesson's settings for the MNIST tasks, measured there (docs/results.md): inpainting,
        48 epochs of at most 70 steps (each about one pass over the 4,500 offline training digits;
        the same 3,360 steps, and so the same minutes, when Keras' 60,000 digits are there), batch
        64 (faster, same results), lambda 1000 (best of 10-1000), both nets half the paper's width:
        a U-Net of 32 filters doubling to at most 128 and a PatchGAN of 32 to 128 filters (at 28x28
        the paper's widths spend the time on arithmetic that does not improve the digits: half as
        wide, each epoch takes about 2.5x less time for the same scores, and the time saved buys
        more epochs, which give better digits; the PatchGAN's stride-1 block stays at 128 filters
        too, where the paper doubles it, which saved a tenth of the step and scored the same or
        better), both learning rates 8e-4, 4x the paper's (the nets
        are still improving at the end of the run: faster steps downhill give more real digits),
        500 validation digits, and the saved generator an exponential moving average of G's weights
        (decay 0.99: closer to the best digits the visible pixels allow, and more real ones,
        benchmarks/quality_variants.py). The PatchGAN keeps the paper's 70x70 patches (its builder's
        default), larger than a digit: judging whole digits made the fills more real than 34x34
        patches, and its epochs take 1.15x as long, so the run has 48 epochs instead of 56, the same
        minutes. edges2fashion keeps the wider nets, the paper's rate and 34x34 patches (FASHION):
        shoes and bags have texture that the narrow nets miss; denoise keeps 34x34 patches too
        (TASK_PRESETS). Like every Config it computes in bfloat16 where the CPU or GPU has it
        (precision "auto": the same scores, docs/speed.md)."""
        lesson = dict(task="inpaint", epochs=48, max_epoch_steps=70, batch_size=64, l1_weight=1000.0, gen_filters=32,
                      gen_max_filters=128, disc_filters=32, disc_max_filters=128, lr=8e-4, val_size=500, ema=0.99)
        lesson.update(TASK_PRESETS.get(changes.get("task"), {}))
        return cls(**{**lesson, **changes})

    @classmethod
    def folder(cls, **changes):
        """The command line's settings for a folder of images: the paper's (Config.paper), with the
        saved generator an exponential moving average of G's weights (decay 0.999, FOLDER), which
        scored better than the paper's settings and the TensorFlow tutorial's step on every score
        at the paper's scale, step for step (docs/results.md). Also measured there, and kept: the
        paper's learning rate (4e-4 gave better pixel scores, worse FCN-scores) and widths (half
        width at equal minutes: better FCN-scores, worse L1), bfloat16 where the hardware has it
        (fp32 scored the same), the bilinear jitter (nearest scored the same)."""
        return cls.paper(**{**FOLDER, **changes})

    @classmethod
    def for_data(cls, **changes):
        """The preset that changes["data"] calls for, as the command line chooses it: Config.folder for
        a folder of images (pairs, or single photos with a task), Config.mnist for anything else (the
        MNIST sources). ValueError / FileNotFoundError for data that can be neither."""
        check_data(changes.get("data"))
        return (cls.folder if is_pair_folder(changes.get("data")) else cls.mnist)(**changes)

    @classmethod
    def from_run(cls, path):
        """The Config of the run in `path` (its folder, or a generator.keras in it), read from its
        config.json, or None if it has none. Settings that a run of an older version did not save
        take their defaults here; ValueError naming the file if it cannot be a run's settings."""
        files = RunFiles.of_model(path)
        if not os.path.exists(files.config):
            return None
        try:
            with open(files.config) as f:
                settings = json.load(f)
            if not isinstance(settings, dict):
                raise ValueError(f"it holds a {type(settings).__name__}")
            known = {field.name for field in dataclasses.fields(cls)}
            return cls(**{name: value for name, value in settings.items() if name in known})
        except (ValueError, TypeError) as e:
            raise ValueError(f"{files.config} is not a run's settings ({e}); restore it, or delete it "
                             f"to use the defaults") from None

    def __post_init__(self):
        check_values(self)

    @property
    def kind(self):
        """What the run trains on, the one answer every command asks for: "pairs" (a folder of image
        pairs, no task), "photos" (a folder of single photos, pairs made by `task`) or "mnist" (an
        MNIST task on 28x28 images)."""
        if self.task is None:
            return "pairs"
        return "photos" if self.task not in TASKS or is_pair_folder(self.data) else "mnist"

    @property
    def image_hw(self):
        """(height, width) of the nets' inputs: the crop for folders, 28x28 for MNIST."""
        return (28, 28) if self.kind == "mnist" else size_hw(self.crop_size)

    def check_run(self):
        """The checks that look at the disk and the installed packages, before a run starts (train
        and the command line make them): ValueError / FileNotFoundError naming the flag."""
        check_data(self.data)
        if self.task is not None and not is_pair_folder(self.data) and self.task not in TASKS:
            photos = f"; {self.task} makes pairs from a folder of photos (--data FOLDER)" if self.task in \
                PHOTO_TASKS else ""
            raise ValueError(f"--task {self.task}: the MNIST tasks are {', '.join(TASKS)}{photos}")
        if self.task is not None and is_pair_folder(self.data) and self.task not in PHOTO_TASKS:
            raise ValueError(f"--task {self.task}: from a folder of photos (--data {self.data}) the tasks are "
                             f"{', '.join(PHOTO_TASKS)}; a folder of image pairs takes no --task")
        side = min(self.image_hw)
        if self.task and self.hole_max > side:
            raise ValueError(f"need 1 <= --hole-min <= --hole-max <= {side} (the image's shorter side), got "
                             f"{self.hole_min}, {self.hole_max}")
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ValueError("--tensorboard needs the tensorboard package: pip install tensorboard")
        if os.path.isfile(self.out):
            raise ValueError(f"--out {self.out} is an existing file, not a folder")
        return self

    def replace(self, **changes):
        """A copy with some settings changed (checked as a new Config is)."""
        return dataclasses.replace(self, **changes)


CHOICES = {"loss": LOSSES, "direction": DIRECTIONS, "strategy": STRATEGIES, "precision": PRECISIONS,
           "jitter_resize": JITTER_RESIZES}


def check_values(cfg):
    """ValueError, naming the flag, for a setting of `cfg` that cannot work; the rules that need
    neither the disk nor TensorFlow (Config.check_run has the others)."""
    for name, choices in CHOICES.items():
        if getattr(cfg, name) not in choices:
            raise ValueError(f"{flag(name)} must be one of {', '.join(choices)}, got {getattr(cfg, name)!r}")
    for name in ("epochs", "batch_size", "val_size", "gen_filters", "disc_filters", "gen_max_filters",
                 "disc_max_filters"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{flag(name)} must be at least 1, got {getattr(cfg, name)}")
    if not cfg.l1_weight >= 0 or math.isinf(cfg.l1_weight):  # "not >=": NaN fails it too
        raise ValueError(f"--lambda must be a finite number >= 0, got {cfg.l1_weight}")
    if not 0 < cfg.lr < math.inf or not 0 <= cfg.beta_1 < 1:
        raise ValueError(f"need --lr > 0 and 0 <= --beta-1 < 1, got {cfg.lr} and {cfg.beta_1}")
    check_sizes(cfg.crop_size, cfg.load_size)
    if not 1 <= cfg.hole_min <= cfg.hole_max:
        raise ValueError(f"need 1 <= --hole-min <= --hole-max, got {cfg.hole_min}, {cfg.hole_max}")
    if not 0 <= cfg.lr_decay_epochs <= cfg.epochs:
        raise ValueError(f"--lr-decay-epochs must be between 0 and --epochs ({cfg.epochs}), got {cfg.lr_decay_epochs}")
    if not 0 <= cfg.ema < 1:
        raise ValueError(f"--ema must be a decay in [0, 1) (0: off), got {cfg.ema}")
    if not 0 <= cfg.seed < 2 ** 32:
        raise ValueError(f"--seed must be between 0 and 2**32 - 1, got {cfg.seed}")
    if not 0 <= cfg.disc_layers <= 8:
        raise ValueError(f"--disc-layers must be between 1 and 8 (0: by image size), got {cfg.disc_layers}")
    if cfg.verbose not in (0, 1, 2):
        raise ValueError(f"--verbose must be 0 (silent), 1 (progress bar) or 2 (a line per epoch), got {cfg.verbose}")
    if min(cfg.limit, cfg.save_every, cfg.max_epoch_steps) < 0:
        raise ValueError(f"--limit, --save-every and --max-epoch-steps must be >= 0, got {cfg.limit}, "
                         f"{cfg.save_every} and {cfg.max_epoch_steps}")
    if cfg.resume and cfg.overwrite:
        raise ValueError("--resume continues the run in --out, --overwrite replaces it: give one of them")


def check_data(data):
    """ValueError / FileNotFoundError for a --data that is missing or a single image file."""
    if data and not os.path.exists(data):
        name = os.path.basename(os.path.normpath(data))
        parent = os.path.dirname(os.path.normpath(data))
        fetch = (f"; `python pix2pix.py download {name}{' --to ' + parent if parent else ''}` makes it"
                 if name in PAPER_DATASETS else "")
        raise FileNotFoundError(f"--data {data} does not exist{fetch}")
    if data and str(data).lower().endswith(IMAGE_SUFFIXES):
        raise ValueError(f"--data {data} is one image; give the folder of image pairs (README: Train on "
                         f"your own pairs), or MNIST's .npz or idx folder")


def check_sizes(crop_size, load_size):
    """ValueError for a crop or load size that cannot work: not N or HxW, a crop the U-Net cannot
    build (unet_depth), or a load size smaller than the crop."""
    (crop_h, crop_w), load = size_hw(crop_size), load_size
    load_h, load_w = size_hw(load) if isinstance(load, str) else (load, load)
    if min(load_h, load_w) < 0:
        raise ValueError(f"need --load-size >= 0, got {load}")
    try:
        unet_depth(crop_h, crop_w)
    except ValueError as e:
        raise ValueError(f"--crop-size {crop_size}: {e}") from None
    if isinstance(load, str) and (load_h < crop_h or load_w < crop_w) or 0 < min(load_h, load_w) < min(crop_h, crop_w):
        raise ValueError(f"--load-size {load} is smaller than --crop-size {crop_size}: give 0 (no resize) or a "
                         f"size at least the crop's on each side")


def unet_depth(height, width, depth=None, max_pad=0.25):
    """The U-Net's size rule (nets.unet, and the command line's --crop-size): the number of times
    the U-Net halves an image of height x width. Each side is padded up to a multiple of 2**depth,
    by at most `max_pad` of itself; `depth` None: the deepest (at most 8) that reaches a 1x1
    bottleneck or that padding allows. ValueError for sides under 4 or a depth that does not fit."""
    if min(height, width) < 4:
        raise ValueError(f"image {height}x{width} is too small for a U-Net: both sides must be >= 4")
    padded = lambda side, d: -(-side // 2 ** d) * 2 ** d  # noqa: E731  round up to a multiple of 2**d
    fits = lambda d: all(padded(s, d) - s <= max_pad * s for s in (height, width))  # noqa: E731
    if depth is None:
        return next(d for d in range(min(8, math.ceil(math.log2(min(height, width)))), 0, -1) if fits(d))
    if depth < 1 or not fits(depth):
        raise ValueError(f"a depth-{depth} U-Net needs sides that are multiples of {2 ** depth}; "
                         f"{height}x{width} would need {padded(height, depth)}x{padded(width, depth)} "
                         f"(more than {max_pad:.0%} padding). Resize or crop the images, or pass a smaller depth")
    return depth


def check_model_file(path):
    """FileNotFoundError / ValueError, naming the file, if `path` cannot be a saved Keras model (a
    .keras file is a zip archive): missing, empty, an HDF5 checkpoint, text, or not a zip. Reads
    the first bytes only, so the command line refuses it before TensorFlow loads; utils.load_generator
    makes the same check."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--model {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(512)
    what = None
    if not head:
        what = "an empty file"
    elif head.startswith(b"\x89HDF"):
        what = "an HDF5 file (a checkpoint such as pix2pix.weights.h5?); use the generator.keras of the same run"
    elif not zipfile.is_zipfile(path):
        printable = all(32 <= b < 127 or b in (9, 10, 13) for b in head)
        what = "a text file" if printable else "not a zip archive, or a damaged or truncated one"
    if what:
        raise ValueError(f"{path} is not a saved Keras model (.keras, a zip archive): it is {what}")


def is_pair_folder(path):
    """True if `path` is a folder of images (pairs, or photos for a task), not MNIST's idx files.
    Here rather than in folder_ds.py so that the command line can choose a preset, and refuse bad
    flags, before TensorFlow loads."""
    return bool(path) and os.path.isdir(path) and not any("idx" in n and "ubyte" in n for n in os.listdir(path))


def size_hw(size):
    """(height, width) of a --crop-size or --load-size value: N (N x N), "HxW" (as "256x512", or
    "256" alone) or a pair (h, w). ValueError for anything else."""
    if isinstance(size, str):
        parts = size.lower().split("x")
        if len(parts) in (1, 2) and all(p.strip().isdigit() for p in parts):
            size = tuple(int(p) for p in parts) if len(parts) == 2 else int(parts[0])
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return tuple(size)
    raise ValueError(f"a size is N or HxW (as 256 or 256x512), got {size!r}")


def load_hw(load_size, crop_size):
    """(height, width) that images are resized to before the random crop, or None for load_size 0
    (crop only): "HxW" as given; N gives the crop's shorter side N and the other side in the crop's
    proportions, so N x N for a square crop (the paper's 286 for 256) and 286x572 for 256x512."""
    if not load_size:
        return None
    if not isinstance(load_size, int):
        return size_hw(load_size)
    crop_h, crop_w = size_hw(crop_size)
    scale = load_size / min(crop_h, crop_w)
    return round(crop_h * scale), round(crop_w * scale)


FLAG_NAMES = {"l1_weight": "--lambda"}  # fields whose flag is not simply --field-name


def flag(name):
    """The command-line flag of the Config field `name`: "--batch-size", "--lambda", ..."""
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


class RunFiles:
    """The files of a training run in its folder (--out): the one place their names are written."""

    def __init__(self, folder):
        self.folder = folder
        self.checkpoint = os.path.join(folder, "pix2pix.weights.h5")  # everything --resume needs
        self.previous_checkpoint = os.path.join(folder, "pix2pix.prev.weights.h5")  # the save before
        self.lock = os.path.join(folder, "pix2pix.lock")             # held by the run writing here
        self.generator = os.path.join(folder, "generator.keras")   # the generator alone, plain Keras
        self.best_generator = os.path.join(folder, "generator.best.keras")  # the one of lowest val L1 so far
        self.tensorboard = os.path.join(folder, "tensorboard_logs")  # --tensorboard: event files
        self.config = os.path.join(folder, "config.json")          # every setting of the run
        self.history = os.path.join(folder, "history.json")        # per-epoch logs
        self.losses = os.path.join(folder, "losses.png")           # their curves
        self.samples = os.path.join(folder, "samples")             # epoch_NNN.png sample grids
        self.gif = os.path.join(folder, "samples.gif")             # the grids as an animation
        self.scores = os.path.join(folder, "scores.json")          # written by `evaluate`
        self.page = os.path.join(folder, "index.html")             # `evaluate`'s results page
        self.page_images = os.path.join(folder, "index_images")    # its thumbnails

    @staticmethod
    def generator_of(model_path):
        """The generator file that `model_path` names: a run folder's generator.keras, else the path itself."""
        return RunFiles(model_path).generator if os.path.isdir(model_path) else model_path

    @classmethod
    def of_model(cls, model_path):
        """The run that `model_path` (a run folder, or a generator.keras in one) belongs to."""
        return cls(model_path if os.path.isdir(model_path) else os.path.dirname(os.path.abspath(model_path)))
