"""Pictures of training: sample grids, their animated GIF, loss curves, and the callbacks that
write them once per epoch. Nothing happens at import; folders are made when a file is written."""
import os

import keras
import numpy as np
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from utils import atomic_path, write_json

REDRAW_EVERY = 5  # epochs between redraws of the pictures of all epochs so far (the GIF, the loss curves)


def to_uint8(images):
    """float [n, h, w, c] in [-1, 1] -> uint8 [n, h, w, c] in 0..255 (values outside are clipped)."""
    images = np.asarray(images, np.float32)
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def sample_grid(src, fake, target, pairs_per_row=2, scale=None, gap=4):
    """One uint8 picture [H, W, c] of (input | generated | real) triples, all on the same scale.

    src, fake, target: float [n, h, w, c] in [-1, 1] (a grayscale input beside colour outputs is
    shown grey). Every panel maps -1 -> black and +1 -> white (or the RGB colours), so an
    inpainting hole (0.0) shows as mid-grey. Triples are laid out `pairs_per_row` to a row; each
    image is enlarged `scale` times with nearest-neighbour pixels (default: 4 for 28x28, 1 from
    112 pixels up).
    """
    src, fake, target = (to_uint8(a) for a in (src, fake, target))
    c = max(a.shape[-1] for a in (src, fake, target))
    src, fake, target = (np.repeat(a, c // a.shape[-1], axis=-1) for a in (src, fake, target))
    n, h, w, _ = target.shape
    scale = scale or max(1, 112 // max(h, w))
    rows = -(-n // pairs_per_row)
    cell_h, cell_w = h * scale + gap, w * scale + gap
    triple_w = 3 * cell_w + 2 * gap          # extra space between triples
    grid = np.full((rows * cell_h + gap, pairs_per_row * triple_w + gap, c), 255, np.uint8)
    for i in range(n):
        top = gap + (i // pairs_per_row) * cell_h
        for j, panel in enumerate((src, fake, target)):
            left = gap + (i % pairs_per_row) * triple_w + j * cell_w
            big = panel[i].repeat(scale, axis=0).repeat(scale, axis=1)  # [h*scale, w*scale, c]
            grid[top:top + h * scale, left:left + w * scale] = big
    return grid


def save_image(array, path, title=None, software=None):
    """Write a uint8 [H, W] / [H, W, 1] / [H, W, 3] array as PNG, atomically, with an optional
    one-line title strip above it; `software` is written into the PNG's "Software" text field."""
    array = array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array
    image = Image.fromarray(array)
    if title:
        titled = Image.new(image.mode, (image.width, image.height + 16), "white")
        titled.paste(image, (0, 16))
        ImageDraw.Draw(titled).text((4, 2), title, fill="black")
        image = titled
    info = PngInfo()
    if software:
        info.add_text("Software", software)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)


def save_gif(png_paths, path, seconds_per_frame=0.5):
    """Animate the PNGs (in the given order) into a looping GIF at `path`, atomically.
    The last frame is held three times longer so the final result can be read."""
    frames = [Image.open(p).convert("RGB") for p in png_paths]
    if not frames:
        return
    durations = [int(seconds_per_frame * 1000)] * len(frames)
    durations[-1] *= 3
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=durations, loop=0)


def plot_history(history, path):
    """Plot the per-epoch training curves of `history` ({name: [value per epoch]}) into a PNG.

    Panels: discriminator loss, D's mean probability on real and generated pairs, the generator's
    GAN loss, and the L1 loss (training, plus validation if present).
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed
    from matplotlib.ticker import MaxNLocator

    panels = [("discriminator loss", ["d_loss"]), ("D(real), D(fake)", ["d_real", "d_fake"]),
              ("generator GAN loss", ["g_gan_loss"]), ("L1 loss", ["g_l1_loss", "val_l1"])]
    fig = Figure(figsize=(12, 3))
    axes = fig.subplots(1, len(panels))
    for ax, (title, names) in zip(axes, panels):
        for name in names:
            if history.get(name):
                values = history[name]
                ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, never 1.5
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)


class SampleGrid(keras.callbacks.Callback):
    """After every epoch, translate the fixed inputs `src` and save
    `folder/epoch_NNN.png` (input | generated | real); every `gif_every` epochs and at the end of
    training, refresh `gif_path` with all epochs;
    with a `log_dir`, also write the grid there as a TensorBoard image ("sample grid", step = epoch)."""

    def __init__(self, src, target, folder, gif_path=None, log_dir=None, gif_every=REDRAW_EVERY):
        super().__init__()
        self.gif_every, self.last_epoch = gif_every, None
        self.src, self.target = np.asarray(src), np.asarray(target)
        self.folder, self.gif_path, self.log_dir, self.writer = folder, gif_path, log_dir, None

    def on_epoch_end(self, epoch, logs=None):
        self.last_epoch = epoch
        fake = self.model.output_generator(self.src, training=False)
        grid = sample_grid(self.src, np.asarray(fake), self.target)
        save_image(grid, os.path.join(self.folder, f"epoch_{epoch + 1:03d}.png"),
                   title=f"epoch {epoch + 1}: input | generated | real")
        if self.log_dir:
            import tensorflow as tf
            self.writer = self.writer or tf.summary.create_file_writer(self.log_dir)
            with self.writer.as_default():
                tf.summary.image("sample grid", to_uint8(grid)[None], step=epoch + 1)
            self.writer.flush()
        if self.gif_path and (epoch + 1) % self.gif_every == 0:
            self.write_gif(epoch)

    def on_train_end(self, logs=None):
        if self.gif_path and self.last_epoch is not None:
            self.write_gif(self.last_epoch)

    def write_gif(self, epoch):
        """The animation of epochs 1..epoch+1: frames of this run only, never a longer earlier run's
        later epochs. Every `gif_every` epochs and at the end (re-encoding all frames takes time)."""
        frames = [os.path.join(self.folder, f"epoch_{e:03d}.png") for e in range(1, epoch + 2)]
        save_gif([f for f in frames if os.path.exists(f)], self.gif_path)


class HistoryRecorder(keras.callbacks.Callback):
    """After every epoch, append the epoch's logs to `history` ({name: [value per epoch]}, e.g.
    a resumed run's so far) and rewrite `json_path`; redraw the loss-curve PNG `png_path` after the
    first epoch, every `plot_every` epochs and at the end of training (drawing it takes about
    half a second, as long as 5 training steps of the MNIST preset). None: that file is not written."""

    def __init__(self, png_path, json_path, history=None, plot_every=REDRAW_EVERY):
        super().__init__()
        self.png_path, self.json_path, self.plot_every = png_path, json_path, plot_every
        self.history = history if history is not None else {}
        self.plotted = None  # how many epochs the PNG shows

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        if self.json_path:
            write_json(self.history, self.json_path)
        if self.plotted is None or (epoch + 1) % self.plot_every == 0:
            self.plot()

    def on_train_end(self, logs=None):
        self.plot()

    def plot(self):
        epochs = max(map(len, self.history.values()), default=0)
        if self.png_path and epochs and epochs != self.plotted:
            plot_history(self.history, self.png_path)
            self.plotted = epochs


def comparison_grid(columns, titles, scale=3, gap=4):
    """One PNG-ready uint8 picture [H, W, 3] with a titled column per array in `columns` (each
    float [n, h, w, c] in [-1, 1], the same n): row i shows image i of every column side by side."""
    columns = [to_uint8(c) for c in columns]
    n, h, w, _ = columns[0].shape
    cell_h, cell_w, top = h * scale + gap, w * scale + gap, 16
    picture = Image.new("RGB", (len(columns) * cell_w + gap, top + n * cell_h + gap), "white")
    draw = ImageDraw.Draw(picture)
    for j, (column, title) in enumerate(zip(columns, titles)):
        draw.text((gap + j * cell_w, 2), title, fill="black")
        for i in range(n):
            big = column[i].repeat(scale, axis=0).repeat(scale, axis=1)       # [h*scale, w*scale, c]
            tile = Image.fromarray(big[..., 0] if big.shape[-1] == 1 else big)
            picture.paste(tile.convert("RGB"), (gap + j * cell_w, top + gap + i * cell_h))
    return np.asarray(picture)
