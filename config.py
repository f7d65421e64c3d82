"""The settings of a training run, in one place: the Config dataclass with its two presets, the
names that the settings choose from, and the file names of a run's output folder.

Which defaults?  `Config()`, `Pix2Pix()` and the builders `unet()` / `patch_discriminator()` use
the paper's settings (lambda 100, batch 1, U-Net filters capped at 512). `Config.paper()` says so
by name; `Config.mnist()` is the lesson's preset, measured on MNIST (docs/results.md), which
`python pix2pix.py` uses for every MNIST task. Only the command line looks at --data to pick one.
Every preset computes in bfloat16 where the hardware has it (precision "auto"; "fp32" is the
paper's arithmetic), measured to give the same scores faster (docs/speed.md).

Pure Python: importing this module does not import TensorFlow (so `--help` answers at once).
"""
import dataclasses
import json
import os
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
PHOTO_TASKS = ("inpaint", "colorize", "edges", "denoise", "superres")  # --data a folder of single photos
DIRECTIONS = ("AtoB", "BtoA")  # image folders: which side is the input
STRATEGIES = ("none", "mirrored", "multiworker")  # tf.distribute (distribute.py)
PRECISIONS = ("fp32", "bf16", "fp16", "auto")  # compute precision (distribute.resolve_precision)
INFERENCE_MODES = ("eval", "paper")  # BatchNorm and dropout at inference (predict.translate)
SIZES = ("keep", "train")  # predict --size: the input's own size, or resized to the training size
WHOLE_IMAGE_PIXELS = 2048 * 2048  # predict translates larger images only in tiles (--tile): memory
EXPORT_FORMATS = ("saved_model", "tflite", "onnx")  # python pix2pix.py export --format
HOLE_SIZES = (10, 15)  # inpainting: smallest and largest side of the square hole, pixels
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

    def replace(self, **changes):
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)


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

    @classmethod
    def of_model(cls, model_path):
        """The run that `model_path` (a run folder, or a generator.keras in one) belongs to."""
        return cls(model_path if os.path.isdir(model_path) else os.path.dirname(os.path.abspath(model_path)))

    def settings(self):
        """The run's saved settings (config.json) as a dict, or {} if it has none; ValueError naming
        the file if it is not a JSON object (cut short, or edited by hand)."""
        if not os.path.exists(self.config):
            return {}
        with open(self.config) as f:
            try:
                settings = json.load(f)
            except ValueError as e:
                settings = e
        if not isinstance(settings, dict):
            problem = settings if isinstance(settings, ValueError) else f"holds a {type(settings).__name__}"
            raise ValueError(f"{self.config} is not a run's settings ({problem}); restore it, or delete it "
                             f"to use the defaults")
        return settings
