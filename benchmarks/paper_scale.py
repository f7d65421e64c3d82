"""The paper's scale: the project's command line against the TensorFlow tutorial's pix2pix step, trained
for the same number of steps on the same 256x256 files, scored on held-out pairs.

    python benchmarks/paper_scale.py                      # 2 seeds x 2 implementations (see --steps)
    python benchmarks/paper_scale.py --seeds 0 --steps 600 --out runs/paper_scale
    python benchmarks/paper_scale.py --quick              # 64x64, 8 pairs, 4 steps: checks that it all runs
    python benchmarks/paper_scale.py --variant 'fp32=--precision fp32' --modes paper,eval   # a preset study
    python benchmarks/paper_scale.py --resume --variant 'narrow=--steps 2800 --gen-filters 32'  # add to it

The data set ("synthetic facades", made offline from --data-seed with NumPy and PIL, written to
OUT/data): 400 train/, 20 val/ and 100 test/ pairs, each a 512x256 PNG holding photo | labels, as the
facades files of the pix2pix site hold them, so the README's facades command (--direction BtoA)
translates the label map (B) into the photo (A). A scene is a wall with facade-like parts on it: a
grid of windows of one class, sometimes a band across the bottom (a shop front), and a few free
rectangles and triangles, overlapping. Seven classes; the label map paints each in a flat colour
(CLASSES). The photo renders each with its own texture, whose phase is anchored to the part's own
geometry (stripes start at its top edge and are centred on its vertical axis; rings are centred on
its centre; the glass's brightness falls from its top to its bottom edge), so a generator has to
find where each part is and how large (structure) and draw what it is made of (texture):

    wall         beige, plain             (0)
    h-stripes    brick, horizontal bars   (1)   same colour as v-stripes: only the texture tells them apart
    v-stripes    brick, vertical bars     (2)
    checks       slate, 12-pixel checks   (3)   same colour as dots
    dots         slate, 8-pixel dots      (4)
    rings        green, concentric rings  (5)
    glass        blue, vertical gradient  (6)

Every texture is mirror-symmetric about its part's vertical axis, so the paper's random mirroring
keeps the photo a function of the label map. What a generator cannot know from the labels: a soft
lighting gradient across each photo (random direction and strength, up to +-15%) and pixel noise
(sd 4 of 255); they set a floor under L1 that neither implementation can beat.

The two implementations, for each seed, trained in turn, each in a fresh process:

    project    the README's facades command, `python pix2pix.py --data OUT/data --direction BtoA --out
               OUT/project_seedS`, plus --epochs E --max-epoch-steps N (E x N = --steps; an epoch is
               at most one pass over the 400 pairs) and --seed S. Config.folder(): the paper's U-Net-256,
               70x70 PatchGAN, lambda 100, Adam 2e-4 beta1 0.5, batch 1, jitter 286 -> 256 (bilinear,
               antialiased), D updated before G, and the saved generator an average of G's weights
               (--ema 0.999); bfloat16 where the CPU has it (precision auto). --variant NAME=FLAGS
               adds the same command with more flags (e.g. --ema 0: the paper's settings exactly).
    reference  the TensorFlow pix2pix tutorial's training, in a worker process: its input pipeline
               (tf.data.Dataset.list_files over train/, the right half the input and the left the
               target, tf.image.resize to 286x286 with nearest-neighbour, tf.image.random_crop of
               the stacked pair to 256, a random mirror, shuffle(400), batch 1) feeding its step
               (bench_train.make_reference_step: binary cross-entropy from logits, lambda 100, Adam 2e-4
               beta1 0.5, both gradients from one tape pass, float32) over the same nets
               (nets.unet and nets.patch_discriminator at 256x256x3, the project's widths).

Scores, on the 100 test/ pairs, each generator run one image at a time in each inference mode of
--modes (default both): "paper", as the paper and the tutorial run it at test time (dropout on,
BatchNorm with the image's own statistics), and "eval" (no dropout, BatchNorm's moving averages),
which `predict` uses for the project's averaged generator (predict.auto_mode): L1 ([-1, 1] units),
PSNR (dB) and SSIM (tools.evaluate's metrics), and the FCN-score analog of the paper's section 4.2:
a small fully convolutional segmenter (segmenter(): five 3x3 convs, two of stride 2, upsampled
back), trained on the real train/ photos against their true class maps,
labels the generated photos; pixel accuracy and mean IoU over the classes against the true class
maps of the test labels. The same segmenter on the real test photos gives the real photos' scores
(the segmenter's own accuracy, not a ceiling: a generated photo can read more easily than a real one).

Minutes: the wall time of each training process, start to exit (TensorFlow's import, building,
the project's validation, sample grids and checkpoints included). s/step: the median time of a
step once compiled: the reference's own clock around each step; the project's from the Keras
progress bar (the epoch's training time over its steps, validation left out), averaged over its epochs.
"""
import argparse
import json
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
RESULT_TAG = "PAPER_SCALE_RESULT "  # a worker's last stdout line: this tag, then its result as JSON

# name, label colour (B), photo colour (A), texture, texture amplitude
CLASSES = (
    ("wall", (40, 40, 200), (196, 180, 150), "plain", 0.0),
    ("h-stripes", (230, 40, 40), (150, 70, 55), "hstripes", 0.35),
    ("v-stripes", (240, 160, 40), (150, 70, 55), "vstripes", 0.35),
    ("checks", (40, 200, 60), (80, 95, 130), "checks", 0.4),
    ("dots", (200, 60, 220), (80, 95, 130), "dots", 0.45),
    ("rings", (60, 220, 220), (80, 130, 70), "rings", 0.35),
    ("glass", (250, 250, 80), (120, 165, 215), "gradient", 0.3),
)
PALETTE = np.array([c[1] for c in CLASSES], np.float32)
NUM_CLASSES = len(CLASSES)
PERIODS = {"hstripes": 10, "vstripes": 10, "checks": 24, "dots": 8, "rings": 12}  # pixels at 256x256
SPLITS = {"train": 400, "val": 20, "test": 100}
QUICK_SPLITS = {"train": 8, "val": 2, "test": 4}
DEFAULT_STEPS = 800


# ---------------------------------------------------------------------------------------------
# The data set
# ---------------------------------------------------------------------------------------------

class Scene:
    """A scene's per-pixel class and the geometry of the part each pixel belongs to (top, bottom,
    centre row and column), painted part by part, later parts over earlier ones."""

    def __init__(self, size):
        self.size = size
        self.classes = np.zeros((size, size), np.int64)
        self.top = np.zeros((size, size), np.float32)
        self.bottom = np.full((size, size), float(size), np.float32)
        self.cy = np.full((size, size), size / 2, np.float32)
        self.cx = np.full((size, size), size / 2, np.float32)

    def paint(self, mask, cls, y0, y1, x0, x1):
        self.classes[mask] = cls
        self.top[mask], self.bottom[mask] = y0, y1
        self.cy[mask], self.cx[mask] = (y0 + y1) / 2, (x0 + x1) / 2

    def rect(self, cls, y0, y1, x0, x1):
        y0, y1, x0, x1 = (int(np.clip(v, 0, self.size)) for v in (y0, y1, x0, x1))
        if y1 - y0 < 2 or x1 - x0 < 2:
            return
        mask = np.zeros((self.size, self.size), bool)
        mask[y0:y1, x0:x1] = True
        self.paint(mask, cls, y0, y1, x0, x1)

    def triangle(self, cls, points):
        from PIL import Image, ImageDraw
        image = Image.new("L", (self.size, self.size), 0)
        ImageDraw.Draw(image).polygon([(float(x), float(y)) for y, x in points], fill=1)
        mask = np.asarray(image, bool)
        if mask.sum() < 4:
            return
        ys, xs = np.nonzero(mask)
        self.paint(mask, cls, ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)


def make_scene(rng, size=256):
    """A random facade-like Scene: wall, maybe a shop band, a grid of windows, a few free parts."""
    s = size / 256
    scene = Scene(size)
    parts = len(CLASSES) - 1
    if rng.random() < 0.6:  # a band across the bottom
        height = rng.uniform(40, 90) * s
        scene.rect(1 + rng.integers(parts), size - height, size, 0, size)
    rows, cols = rng.integers(2, 5), rng.integers(2, 6)  # a grid of windows of one class
    width, height = rng.uniform(20, 56) * s, rng.uniform(24, 64) * s
    gap_x = (size - cols * width) / (cols + 1)
    gap_y = rng.uniform(8, 24) * s
    cls, y = 1 + rng.integers(parts), rng.uniform(6, 30) * s
    if gap_x > 3 * s:
        for _ in range(rows):
            for col in range(cols):
                x = gap_x + col * (width + gap_x)
                scene.rect(cls, y, y + height, x, x + width)
            y += height + gap_y
    for _ in range(rng.integers(2, 6)):  # free parts
        cls = 1 + rng.integers(parts)
        cy, cx = rng.uniform(0, size, 2)
        h, w = rng.uniform(30, 110, 2) * s
        if rng.random() < 0.7:
            scene.rect(cls, cy - h / 2, cy + h / 2, cx - w / 2, cx + w / 2)
        else:
            scene.triangle(cls, [(cy - h / 2, cx), (cy + h / 2, cx - w / 2), (cy + h / 2, cx + w / 2)])
    return scene


def texture(kind, scene, ys, xs, s):
    """float32 [size, size] in [-1, 1]: texture `kind` at every pixel, anchored to its part."""
    def square(phase):
        return np.where(np.cos(phase) >= 0, 1.0, -1.0)
    period = max(2.0, PERIODS.get(kind, 1) * s)
    dy, dx = ys - scene.top, xs - scene.cx
    if kind == "plain":
        return np.zeros_like(dy)
    if kind == "hstripes":
        return square(2 * np.pi * dy / period)
    if kind == "vstripes":
        return square(2 * np.pi * dx / period)
    if kind == "checks":
        return square(2 * np.pi * dy / period) * square(2 * np.pi * dx / period)
    if kind == "dots":
        return np.where(np.cos(2 * np.pi * dy / period) + np.cos(2 * np.pi * dx / period) > 1.0, 1.0, -1.0)
    if kind == "rings":
        return square(2 * np.pi * np.hypot(ys - scene.cy, dx) / period)
    if kind == "gradient":
        return 1.0 - 2.0 * dy / np.maximum(scene.bottom - scene.top, 1.0)
    raise ValueError(f"unknown texture {kind!r}")


def render(scene, rng):
    """(photo, labels): uint8 [size, size, 3] each; the photo with its lighting and noise."""
    size = scene.size
    s = size / 256
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    photo = np.zeros((size, size, 3), np.float32)
    for cls, (_, _, colour, kind, amplitude) in enumerate(CLASSES):
        mask = scene.classes == cls
        if mask.any():
            shade = 1.0 + amplitude * texture(kind, scene, ys, xs, s)[mask]
            photo[mask] = np.asarray(colour, np.float32) * shade[:, None]
    angle, strength = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.3)
    ramp = (np.cos(angle) * ys + np.sin(angle) * xs) / size
    light = 1.0 + strength * (ramp - ramp.mean())
    photo = photo * light[..., None] + rng.normal(0, 4.0, photo.shape)
    labels = PALETTE[scene.classes].astype(np.uint8)
    return np.clip(np.round(photo), 0, 255).astype(np.uint8), labels


def make_dataset(root, size=256, splits=None, seed=0):
    """Write the set into `root`: ROOT/{train,val,test}/NNNNN.png, each photo | labels (A | B).
    Returns {split: number of pairs}."""
    from PIL import Image
    splits = splits or SPLITS
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        folder = os.path.join(root, split)
        os.makedirs(folder, exist_ok=True)
        for i in range(count):
            photo, labels = render(make_scene(rng, size), rng)
            Image.fromarray(np.concatenate([photo, labels], axis=1)).save(os.path.join(folder, f"{i:05d}.png"))
    return dict(splits)


def label_classes(labels):
    """uint8 [..., 3] label maps (B) -> int64 [...] class numbers: the nearest palette colour."""
    distance = np.sum((np.asarray(labels, np.float32)[..., None, :] - PALETTE) ** 2, axis=-1)
    return np.argmin(distance, axis=-1)


def read_split(root, split):
    """(photos, labels): uint8 [n, h, w, 3] each, the A and B halves of ROOT/split's files, by name."""
    from PIL import Image
    folder = os.path.join(root, split)
    pairs = [np.asarray(Image.open(os.path.join(folder, name)).convert("RGB"))
             for name in sorted(os.listdir(folder)) if name.endswith(".png")]
    both = np.stack(pairs)
    half = both.shape[2] // 2
    return both[:, :, :half], both[:, :, half:]


def to_unit(images):
    return np.asarray(images, np.float32) / 127.5 - 1.0


# ---------------------------------------------------------------------------------------------
# The tutorial's training (a worker process)
# ---------------------------------------------------------------------------------------------

def tutorial_dataset(root, load_size=286, crop_size=256):
    """The TensorFlow pix2pix tutorial's training pipeline over ROOT/train/*.png, as it writes it:
    (input, target) float32 [1, crop, crop, 3] in [-1, 1], endless. The right half of each file is
    the input (the labels), the left the target (the photo), as the tutorial reads facades."""
    import tensorflow as tf

    def load(image_file):
        image = tf.io.decode_png(tf.io.read_file(image_file), channels=3)  # the tutorial: decode_jpeg
        w = tf.shape(image)[1] // 2
        input_image, real_image = image[:, w:, :], image[:, :w, :]
        return tf.cast(input_image, tf.float32), tf.cast(real_image, tf.float32)

    def resize(input_image, real_image, height, width):
        input_image = tf.image.resize(input_image, [height, width], method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
        real_image = tf.image.resize(real_image, [height, width], method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
        return input_image, real_image

    def random_crop(input_image, real_image):
        stacked_image = tf.stack([input_image, real_image], axis=0)
        cropped_image = tf.image.random_crop(stacked_image, size=[2, crop_size, crop_size, 3])
        return cropped_image[0], cropped_image[1]

    def normalize(input_image, real_image):
        return (input_image / 127.5) - 1, (real_image / 127.5) - 1

    @tf.function()
    def random_jitter(input_image, real_image):
        input_image, real_image = resize(input_image, real_image, load_size, load_size)
        input_image, real_image = random_crop(input_image, real_image)
        if tf.random.uniform(()) > 0.5:
            input_image = tf.image.flip_left_right(input_image)
            real_image = tf.image.flip_left_right(real_image)
        return input_image, real_image

    def load_image_train(image_file):
        input_image, real_image = load(image_file)
        input_image, real_image = random_jitter(input_image, real_image)
        return normalize(input_image, real_image)

    files = os.path.join(root, "train", "*.png")
    count = len([n for n in os.listdir(os.path.join(root, "train")) if n.endswith(".png")])
    train_dataset = tf.data.Dataset.list_files(files)
    train_dataset = train_dataset.map(load_image_train, num_parallel_calls=tf.data.AUTOTUNE)
    train_dataset = train_dataset.shuffle(count)  # the tutorial's BUFFER_SIZE = 400, the whole set
    return train_dataset.batch(1)


def train_reference(data, out, steps, seed, size):
    """Train the tutorial's way for `steps` steps; save the generator as OUT/generator.keras.
    Returns {"steps", "step_times" (seconds from each step's end to the next's, the first step
    left out), "first_step_s" (the first, which traces the graph), "final_losses"}."""
    sys.path[:0] = [ROOT, BENCHMARKS]
    import keras

    import bench_train
    from config import Config
    from nets import patch_discriminator, unet

    keras.utils.set_random_seed(seed)
    shape = (size, size, 3)
    generator = unet(shape, max_filters=Config.paper(crop_size=size).gen_max_filters)  # the CLI's nets
    discriminator = patch_discriminator(shape)
    step, _, _ = bench_train.make_reference_step(generator, discriminator)
    load_size = round(size * 286 / 256)
    times, last = [], time.perf_counter()
    for input_image, target in tutorial_dataset(data, load_size, size).repeat().take(steps):
        losses = step(input_image, target)
        np.asarray(losses["gen_total_loss"])  # the step has finished
        now = time.perf_counter()
        times.append(now - last)  # from the last step's end: the input pipeline's wait included
        last = now
    os.makedirs(out, exist_ok=True)
    generator.save(os.path.join(out, "generator.keras"))
    return {"steps": steps, "step_times": times[1:], "first_step_s": times[0],
            "final_losses": {k: float(v) for k, v in losses.items()}}


def worker_main(argv):
    job = json.loads(argv[0])
    result = train_reference(**job)
    sys.stdout.flush()
    print(RESULT_TAG + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------
# Running the two trainings
# ---------------------------------------------------------------------------------------------

def env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def epochs_for(steps, train_pairs):
    """(epochs, max_epoch_steps) with epochs x max_epoch_steps == steps, each epoch at most one pass."""
    epochs = math.ceil(steps / train_pairs)
    while steps % epochs:
        epochs += 1
    return epochs, steps // epochs


def project_command(data, out, steps, seed, train_pairs, size, flags=()):
    epochs, per_epoch = epochs_for(steps, train_pairs)
    command = ["python", "pix2pix.py", "--data", data, "--direction", "BtoA", "--out", out,
               "--epochs", str(epochs), "--max-epoch-steps", str(per_epoch), "--seed", str(seed), *flags]
    if size != 256:  # --quick: the nets at the images' size, the paper's 286/256 ratio
        command += ["--load-size", str(round(size * 286 / 256)), "--crop-size", str(size)]
    return command


PROGRESS = re.compile(r"^\s*(\d+)/(\d+)\s")  # a Keras progress-bar frame: "  12/400 ━━━ ..."
ANSI = re.compile(r"\x1b\[[0-9;]*m|\x08")


def run_streamed(command, log):
    """Run `command` (a list) in ROOT, its output read as it comes. Returns (exit code, stdout text,
    frames): frames [(step, steps in the epoch, perf_counter when the frame arrived)], one per
    Keras progress-bar update, which Keras prints after each training step (every step that ends
    0.05 s or more after the last frame)."""
    with open(log + ".stderr", "w") as err:
        proc = subprocess.Popen(command, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=err)
        chunks, frames, partial, counted = [], [], "", False
        while True:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            now = time.perf_counter()
            text = chunk.decode("utf-8", "replace")
            chunks.append(text)
            pieces = re.split(r"[\r\n]", partial + text)
            for i, piece in enumerate(pieces):
                # A frame is counted when it arrives: Keras ends a frame only with the next one's "\r".
                match = None if (i == 0 and counted) else PROGRESS.match(ANSI.sub("", piece))
                if match:
                    frames.append((int(match.group(1)), int(match.group(2)), now))
            partial, counted = pieces[-1], bool(match) or (len(pieces) == 1 and counted)
        code = proc.wait()
    output = "".join(chunks)
    with open(log, "w") as f:
        f.write(output)
    return code, output, frames


def steady_step_time(frames):
    """Seconds per training step once compiled, from progress-bar frames (run_streamed): in each
    epoch, the time from its first frame to its last over the steps between them (the first
    step, which traces the graph, and the validation after the last are left out). None if no
    epoch has two frames."""
    seconds = steps = 0.0
    epoch = []
    for frame in [*frames, None]:
        if frame is not None and epoch and frame[0] == epoch[-1][0]:
            continue  # the epoch's last frame again, after validation
        if epoch and (frame is None or frame[0] < epoch[-1][0]):  # the next epoch starts over at 1
            (first, _, began), (last, _, ended) = epoch[0], epoch[-1]
            seconds, steps = seconds + ended - began, steps + last - first
            epoch = []
        if frame is not None:
            epoch.append(frame)
    return seconds / steps if steps else None


def run_project(data, out, steps, seed, train_pairs, size, log, flags=()):
    """Run the project's command line (with a variant's extra `flags`); returns its timing."""
    shutil.rmtree(out, ignore_errors=True)
    command = project_command(data, out, steps, seed, train_pairs, size, flags)
    start = time.perf_counter()
    code, output, frames = run_streamed([sys.executable, *command[1:]], log)
    wall = time.perf_counter() - start
    if code != 0:
        tail = (output.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{' '.join(command)} exited with {code}: {tail} (log: {log}, {log}.stderr)")
    return {"command": " ".join(shlex.quote(c) for c in command), "wall_s": wall,
            "s_per_step": steady_step_time(frames),
            "generator": os.path.normpath(os.path.join(ROOT, out, "generator.keras"))}


def run_reference(data, out, steps, seed, size, log):
    """Run the tutorial's training in a worker process; returns its timing."""
    shutil.rmtree(out, ignore_errors=True)
    job = {"data": data, "out": out, "steps": steps, "seed": seed, "size": size}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(job)], cwd=ROOT,
                          env=env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    with open(log, "w") as f:
        f.write(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    result = next((json.loads(line[len(RESULT_TAG):]) for line in reversed(proc.stdout.splitlines())
                   if line.startswith(RESULT_TAG)), None)
    if proc.returncode != 0 or result is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the reference worker exited with {proc.returncode}: {tail} (log: {log})")
    times = result["step_times"]
    return {"wall_s": wall, "s_per_step": statistics.mean(times) if times else None,
            "generator": os.path.join(out, "generator.keras"), "final_losses": result["final_losses"]}


# ---------------------------------------------------------------------------------------------
# Scoring: pixels, and the FCN-score analog
# ---------------------------------------------------------------------------------------------

def segmenter(classes=NUM_CLASSES):
    """A small fully convolutional segmenter: float32 [n, h, w, 3] in [-1, 1] (h, w multiples of 4)
    -> logits [n, h, w, classes]. Five 3x3 convs (32, 32 of stride 2, 64, 64 of stride 2, 64
    dilated 2), a 1x1 conv to the classes, bilinear upsampling x4: each pixel sees about 40x40."""
    import keras
    from keras import layers
    images = keras.Input((None, None, 3))
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(images)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 3, padding="same", dilation_rate=2, activation="relu")(x)
    x = layers.Conv2D(classes, 1)(x)
    return keras.Model(images, layers.UpSampling2D(4, interpolation="bilinear")(x), name="segmenter")


def train_segmenter(photos, classes, steps, crop, batch_size=8, seed=0):
    """The segmenter trained on real photos (uint8 [n, h, w, 3]) against their class maps ([n, h, w])
    for `steps` steps of random crop x crop windows, mirrored half the time. Returns the model."""
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)
    model = segmenter()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images = tf.constant(to_unit(photos))
    maps = tf.constant(classes[..., None].astype(np.float32))

    def window(i):
        both = tf.image.random_crop(tf.concat([images[i], maps[i]], axis=-1), [crop, crop, 4])
        both = tf.image.random_flip_left_right(both)
        return both[..., :3], tf.cast(both[..., 3], tf.int32)

    ds = (tf.data.Dataset.range(len(photos)).repeat().shuffle(len(photos), seed=seed)
          .map(window, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2))
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return model


def trained_segmenter(out, photos, classes, steps, crop, fresh=True):
    """The segmenter of the benchmark in `out`: trained (train_segmenter) and saved as
    OUT/segmenter.keras, or, with fresh=False and that file there, loaded from it, so that scores
    taken at different times (--score-only) come from one segmenter."""
    import keras
    path = os.path.join(out, "segmenter.keras")
    if not fresh and os.path.exists(path):
        return keras.models.load_model(path, compile=False)
    print("training the segmenter ...", file=sys.stderr, flush=True)
    model = train_segmenter(photos, classes, steps, crop)
    model.save(path)
    return model


class ScoreCache:
    """Scores already taken in `path` (JSON), by generator file, its modification time and test
    mode: --score-only scores only the generators it has not scored yet. fresh=True starts empty."""

    def __init__(self, path, fresh=True):
        self.path, self.scores = path, {}
        if not fresh and os.path.exists(path):
            with open(path) as f:
                self.scores = json.load(f)

    def get(self, generator, mode, score):
        key = f"{os.path.realpath(generator)}|{os.path.getmtime(generator)}|{mode}"
        if key not in self.scores:
            self.scores[key] = score()
            with open(self.path, "w") as f:
                json.dump(self.scores, f, indent=2)
        return self.scores[key]


def segment(model, images, batch_size=8):
    """int64 [n, h, w] class map of float32 images [n, h, w, 3] in [-1, 1]."""
    return np.concatenate([np.argmax(np.asarray(model(images[i:i + batch_size], training=False)), axis=-1)
                           for i in range(0, len(images), batch_size)])


def fcn_scores(predicted, truth, classes=NUM_CLASSES):
    """{"pixel_acc", "mean_iou"} of class maps (int [n, h, w]): the share of pixels labelled right,
    and the mean over the classes present in either map of TP / (TP + FP + FN), pooled over the set."""
    confusion = np.bincount(truth.ravel() * classes + predicted.ravel(), minlength=classes ** 2)
    confusion = confusion.reshape(classes, classes).astype(np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    return {"pixel_acc": float(tp.sum() / confusion.sum()), "mean_iou": float(np.mean(tp[present] / union[present]))}


def score_generator(path, labels, photos, truth, seg, seed=0, mode="paper"):
    """Run the generator in `path` on the test label maps, one image at a time, in inference `mode`:
    "paper" as the paper runs it at test time (dropout on, BatchNorm on the image's own statistics),
    "eval" with BatchNorm's moving averages and no dropout; score its photos: L1, PSNR, SSIM, FCN
    pixel accuracy, mean IoU."""
    import keras

    from tools.evaluate import l1, psnr, ssim
    from tools.predict import translate
    from utils import load_generator
    keras.utils.set_random_seed(seed)  # dropout is on at test time: the same draws for every generator
    fake = translate(load_generator(path), to_unit(labels), batch_size=1, mode=mode)
    real = to_unit(photos)
    return {"l1": l1(fake, real), "psnr": psnr(fake, real), "ssim": ssim(fake, real),
            **fcn_scores(segment(seg, fake), truth)}


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------

COLUMNS = ("implementation", "test mode", "seed", "steps", "minutes", "s/step", "L1", "PSNR dB", "SSIM",
           "FCN pixel acc", "FCN mean IoU")


def fmt(value, spec):
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def table(rows, real):
    """The markdown table: one row per (implementation, test mode, seed), the mean over the seeds
    when there are several, and the real photos' segmenter scores."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|---:|" + "---:|" * (len(COLUMNS) - 3)]

    def line(name, mode, seed, row):
        cells = [name, mode, seed, row.get("steps", "-"), fmt(row.get("minutes"), ".1f"),
                 fmt(row.get("s_per_step"), ".2f"),
                 fmt(row.get("l1"), ".4f"), fmt(row.get("psnr"), ".2f"), fmt(row.get("ssim"), ".3f"),
                 fmt(row.get("pixel_acc"), ".1%"), fmt(row.get("mean_iou"), ".3f")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")

    groups = dict.fromkeys((r["implementation"], r["mode"]) for r in rows)  # in the order trained and scored
    for name, mode in groups:
        mine = [r for r in rows if (r["implementation"], r["mode"]) == (name, mode)]
        for row in mine:
            line(name, mode, row["seed"], row)
        if len(mine) > 1:
            mean = {k: statistics.mean(r[k] for r in mine if r.get(k) is not None)
                    for k in ("minutes", "s_per_step", "l1", "psnr", "ssim", "pixel_acc", "mean_iou")
                    if any(r.get(k) is not None for r in mine)}
            line(f"**{name}, mean**", mode, "all", {**mean, "steps": mine[0]["steps"]})
    line("real test photos", "-", "-", {"steps": "-", **real})
    return "\n".join(lines)


def machine():
    """"N CPU cores, MODEL", from bench_train.machine_info."""
    sys.path[:0] = [BENCHMARKS]
    import bench_train
    info = bench_train.machine_info()
    return f"{info['nproc']} CPU cores, {info['cpu']}"


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train the project's command line and the TensorFlow tutorial's "
                                            "pix2pix step for the same steps on a synthetic 256x256 facades set; "
                                            "score both on held-out pairs; print a markdown table.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help="training steps (batch 1) of each implementation and seed; the default fits 2 seeds in "
                        "40 minutes on two idle CPU cores (docs/results.md)")
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds, each trains both implementations")
    p.add_argument("--out", default=os.path.join("runs", "paper_scale"), help="folder for the data, runs and results")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic data set")
    p.add_argument("--segmenter-steps", type=int, default=600, help="training steps of the FCN-score segmenter")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                   help="also train the project's command with these extra flags, as its own rows, e.g. "
                        "--variant 'fp32=--precision fp32' (repeatable); a --steps N among the flags sets "
                        "that variant's steps (to compare at equal minutes)")
    p.add_argument("--modes", default="paper,eval",
                   help="comma-separated inference modes each generator is scored in: paper (dropout on, "
                        "BatchNorm on each image's statistics, as the paper and the tutorial test), eval")
    p.add_argument("--score-only", action="store_true",
                   help="train nothing: score the runs that an earlier benchmark in --out trained (its "
                        "trainings.json), with its segmenter (OUT/segmenter.keras); scores in scores.json are reused")
    p.add_argument("--resume", action="store_true",
                   help="keep what an earlier benchmark in --out made (its data, trainings.json, segmenter and "
                        "scores) and train only the runs it does not hold, with the same name, seed, steps and "
                        "flags: after an interruption, or to add a --variant to a finished study")
    p.add_argument("--quick", action="store_true",
                   help="64x64 images, 8 training pairs, 4 steps: checks that everything runs; numbers mean nothing")
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or set(args.modes) - {"paper", "eval"}:
        p.error(f"--modes must name paper and/or eval, got {','.join(args.modes)!r}")
    if args.resume and args.score_only:
        p.error("--resume trains what is missing and --score-only trains nothing: give one of them")
    variants = {}
    for spec in args.variant:
        name, sep, flags = spec.partition("=")
        if not sep or not name.strip() or name.strip() in ("project", "reference"):
            p.error(f"--variant must be NAME=FLAGS with a new name, got {spec!r}")
        flags, steps = shlex.split(flags), None
        if "--steps" in flags:  # the benchmark's flag, not the command's: this variant's own steps
            i = flags.index("--steps")
            if i + 1 == len(flags) or not flags[i + 1].isdigit() or int(flags[i + 1]) < 1:
                p.error(f"--variant {name.strip()!r}: --steps must be followed by a number of steps, got {spec!r}")
            steps = int(flags.pop(i + 1))
            flags.pop(i)
        variants[f"project, {name.strip()}"] = (flags, steps)
    args.size, args.splits, args.crop = 256, dict(SPLITS), 128
    if args.quick:
        args.size, args.splits, args.crop = 64, dict(QUICK_SPLITS), 32
        args.steps = 4 if "--steps" not in (argv if argv is not None else sys.argv) else args.steps
        args.segmenter_steps = min(args.segmenter_steps, 150)
    if args.steps < 1 or not args.seeds:
        p.error("--steps must be at least 1 and --seeds name at least one seed")
    args.variants = {name: (flags, steps or args.steps) for name, (flags, steps) in variants.items()}
    return args


def main(argv=None):
    args = parse_args(argv)
    command = " ".join(shlex.quote(a) for a in ["python", os.path.relpath(os.path.abspath(__file__)),
                                                 *(sys.argv[1:] if argv is None else argv)])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = os.path.abspath(args.out)
    data = os.path.join(out, "data")
    began = time.perf_counter()
    trainings = os.path.join(out, "trainings.json")
    keep = args.score_only or args.resume  # what an earlier benchmark in --out made
    rows = []
    if keep and os.path.exists(trainings):
        with open(trainings) as f:
            rows = [{**row, "generator": os.path.normpath(row["generator"])} for row in json.load(f)]
    elif args.score_only:
        raise SystemExit(f"--score-only: {trainings} does not exist; run the benchmark with this --out first")
    if not args.score_only and not (args.resume and os.path.isdir(data)):
        shutil.rmtree(data, ignore_errors=True)
        make_dataset(data, args.size, args.splits, args.data_seed)
        print(f"data: {', '.join(f'{n} {s}' for s, n in args.splits.items())} pairs of {args.size}x{args.size} "
              f"in {data}", file=sys.stderr, flush=True)
    # name: (the project's extra flags, or None for the reference; steps)
    implementations = {"project": ([], args.steps), "reference": (None, args.steps), **args.variants}
    for seed in [] if args.score_only else args.seeds:
        for name, (flags, steps) in implementations.items():
            if any((r["implementation"], r["seed"], r["steps"], r.get("flags")) == (name, seed, steps, flags) and
                   os.path.exists(r["generator"]) for r in rows):
                print(f"kept {name}, seed {seed}, {steps} steps (--resume)", file=sys.stderr, flush=True)
                continue
            folder = re.sub(r"[^A-Za-z0-9.]+", "_", name.replace("project, ", "project_"))
            run = os.path.join(out, f"{folder}_seed{seed}")
            log = os.path.join(out, f"{folder}_seed{seed}.log")
            print(f"training {name}, seed {seed}, {steps} steps ...", file=sys.stderr, flush=True)
            if flags is not None:
                timing = run_project(os.path.relpath(data, ROOT), os.path.relpath(run, ROOT), steps, seed,
                                     args.splits["train"], args.size, log, flags)
            else:
                timing = run_reference(data, run, steps, seed, args.size, log)
            rows = [r for r in rows if (r["implementation"], r["seed"]) != (name, seed)]
            rows.append({"implementation": name, "seed": seed, "steps": steps, "flags": flags,
                         "minutes": timing["wall_s"] / 60, **timing})
            print(f"  done in {timing['wall_s'] / 60:.1f} min", file=sys.stderr, flush=True)
            with open(trainings, "w") as f:  # --score-only and --resume start from here
                json.dump(rows, f, indent=2)
    sys.path.insert(0, ROOT)
    train_photos, train_labels = read_split(data, "train")
    test_photos, test_labels = read_split(data, "test")
    truth = label_classes(test_labels)
    seg = trained_segmenter(out, train_photos, label_classes(train_labels), args.segmenter_steps, args.crop,
                            fresh=not keep)
    real = fcn_scores(segment(seg, to_unit(test_photos)), truth)
    majority = float(np.bincount(truth.ravel(), minlength=len(CLASSES)).max() / truth.size)
    cache = ScoreCache(os.path.join(out, "scores.json"), fresh=not keep)
    rows = [{**row, "mode": mode, **cache.get(row["generator"], mode, lambda: score_generator(
                row["generator"], test_labels, test_photos, truth, seg, mode=mode))}
            for row in rows for mode in args.modes]
    wall = time.perf_counter() - began
    host = machine()
    report = "\n".join([f"Command: `{command}`", "",
                        f"Machine: {host}; load average at end {[round(x, 2) for x in os.getloadavg()]}; "
                        f"{'scoring only' if args.score_only else 'resumed' if args.resume else 'whole benchmark'} "
                        f"{wall / 60:.1f} min", "",
                        f"Project command (seed {args.seeds[0]}): `{rows[0]['command']}`", "",
                        table(rows, real), "",
                        f"Test pairs: {args.splits['test']}; the most common class covers {majority:.1%} of their "
                        f"pixels (a segmenter that always says it scores that pixel accuracy)."])
    print(report)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"command": command, "machine": host, "wall_s": wall, "rows": rows, "real": real,
                   "majority": majority, "report": report}, f, indent=2)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2:])
    else:
        sys.exit(main())
