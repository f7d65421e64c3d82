"""Draw and watch it translate: a trained generator in the browser, the way the edges2cats demo of
the paper's time showed what a conditional GAN does.

    python pix2pix.py demo --model runs/pix2pix        # then open http://127.0.0.1:7860

Left, a canvas at the generator's own size (28x28 for the MNIST tasks, the crop size for a folder
run), shown large: pens, eraser, undo, redo, brush size, clear, a few validation inputs of the run
to start from, an upload. For inpainting the red pen cuts the hole. Right, what the net sees (the
drawing prepared as `predict` reads a file) and the generator's output (predict.translate),
redrawn whenever a stroke ends, in the inference mode chosen on the page (eval or paper).

The canvas is our own, a gr.HTML with a plain 2D <canvas> and a page of JavaScript
(demo_canvas.js): when the pen lifts it sends its pixels to Python at once, as a PNG data URL in
the stroke event itself. A stroke costs the server 6 ms at 28x28 and about 0.14 s at 256x256 on two
CPU cores (docs/demo.md, "How fast it answers"): the canvas is read in memory, not through a
temporary PNG file, and the generator runs through a tf.function per inference mode
(FastGenerator), traced and run once at start-up, not eagerly layer by layer. Gradio's own
start-up messages are off (its share=True hint among them: this page has no share link); `serve`
prints the "Running on local URL:" line itself.

Gradio (requirements-demo.txt) is imported inside the functions, and so are NumPy and everything
that loads TensorFlow: importing this module is instant (`pix2pix.py demo --help` reads its
defaults), and `check_serving` answers a missing package or a taken port before TensorFlow starts.
"""
import os
import socket
import threading

from config import INFERENCE_MODES, Config, RunFiles

INSTALL = "python -m pip install -r requirements-demo.txt"
HOST, PORT = "127.0.0.1", 7860      # this machine only; --host 0.0.0.0 serves the network
EXAMPLES = 6                        # validation inputs offered as starting points
HOLE_RGB = (255, 0, 0)              # the inpainting pen: red on the canvas, 0.0 (grey) for the net
MNIST_PENS = {"white ink": "#ffffff", "black background": "#000000"}  # +1 and -1: white on black, as MNIST
CANVAS_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_canvas.js")  # the canvas's script
CANVAS_SIDE = 420                   # screen pixels of the canvas's longer side
CSS = (".pixels img, #canvas canvas {image-rendering: pixelated;}"  # big pixels, not a blur
       " #net-input img, #net-output img {width: 100%; height: 100%; object-fit: contain;}"
       " #canvas canvas {max-width: 100%; height: auto; touch-action: none; cursor: crosshair;"
       " border: 1px solid var(--border-color-primary);}"
       " #canvas .tools {display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin-bottom: 8px;}"
       " #canvas .tools button {padding: 2px 10px; border: 1px solid var(--border-color-primary); border-radius: 4px;}"
       " #canvas .tools .chosen {outline: 3px solid var(--color-accent);}")


def import_gradio():
    """The gradio module, with its analytics off (set before the import: no calls home); a
    RuntimeError with the install command if it is missing."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError as e:
        raise RuntimeError(f"the demo needs Gradio, which is not installed: {INSTALL}") from e
    return gradio


def check_serving(host=HOST, port=PORT):
    """Before anything slow: RuntimeError with the install command if Gradio is missing, OSError
    if `port` on `host` is taken."""
    import_gradio()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise OSError(f"port {port} on {host} is taken ({e.strerror}): another program, or a demo "
                          f"already running, uses it; choose another with --port, e.g. --port {port + 1}") from e


def open_run(model_path):
    """(generator, run, examples) of a run folder or its generator.keras: the Keras model, the
    run's Config (None without a config.json) and load_examples of its validation data."""
    from utils import load_generator
    generator = load_generator(RunFiles.generator_of(model_path))
    run = Config.from_run(model_path)
    return generator, run, load_examples(run, generator.input_shape[1:]) if run else None


def load_examples(cfg, img_shape, count=EXAMPLES):
    """The first `count` validation inputs of the run `cfg` (its Config), float32 [count, h, w, c]
    in [-1, 1], made by the run's own pipeline (mnist_ds.get_mnist_ds or folder_ds.get_folder_ds,
    same seed and split); None, with a note, when its data cannot be read here."""
    import numpy as np

    from mnist_ds import get_mnist_ds, load_for_task
    from tools.folder_ds import get_folder_ds
    holes = (cfg.hole_min, cfg.hole_max)
    try:
        if cfg.kind != "mnist":  # a folder of pairs, or of photos with a task
            val = get_folder_ds(cfg.data, val_size=cfg.val_size, direction=cfg.direction,
                                crop_size=tuple(img_shape[:2]), load_size=cfg.load_size, seed=cfg.seed, task=cfg.task,
                                hole_sizes=holes, val_batch_size=count, verbose=False)[1]
        else:
            images, _ = load_for_task(cfg.task, cfg.data, verbose=False)
            val = get_mnist_ds(count, images=images, val_size=cfg.val_size, task=cfg.task, seed=cfg.seed,
                               verbose=False, hole_sizes=holes)[1]
        return np.asarray(next(iter(val))[0][:count])
    except (KeyError, OSError, ValueError, RuntimeError) as e:
        print(f"note: no example inputs, the run's data cannot be read here ({e}); draw from a blank canvas")
        return None


def to_canvas(src, task):
    """One net input (float [h, w, c] in [-1, 1]) as the canvas shows it: uint8 RGB [h, w, 3];
    for inpainting the hole (pixels exactly 0.0, as tasks.mask_square sets them) painted red."""
    import numpy as np

    from visual import to_uint8
    canvas = to_uint8(src[None])[0]
    canvas = np.repeat(canvas, 3, axis=-1) if canvas.shape[-1] == 1 else canvas
    if task == "inpaint":
        canvas[np.all(src == 0.0, axis=-1)] = HOLE_RGB
    return canvas


def from_canvas(canvas, img_shape, cfg):
    """The net's input from a canvas (uint8 [H, W, 3 or 4]): float32 [1, h, w, c] in [-1, 1],
    exactly what `predict` reads from the canvas saved as a PNG file (predict.load_inputs: channels,
    size, range; tests/test_demo.py compares the two), without the file; for inpainting the red
    pixels become the hole, set to 0.0 by tasks.cut_hole."""
    import numpy as np

    from tasks import cut_hole, grey_to_hole
    from tools.predict import fit_to_size
    canvas = np.asarray(canvas, np.uint8)[..., :3]
    image = decoded(canvas, img_shape[-1]).astype(np.float32) / np.float32(127.5) - np.float32(1.0)  # read_image
    image = grey_to_hole(image) if cfg.task == "inpaint" else image                                 # read_input
    src = fit_to_size(image, img_shape[:2], cfg.load_size, cfg.task)[None]                          # load_input
    if cfg.task == "inpaint":
        red = (canvas[..., 0] > 200) & (canvas[..., 1] < 60) & (canvas[..., 2] < 60)  # [h, w]
        src = np.asarray(cut_hole(src, red[None, ..., None].astype(np.float32)))
    return src


def decoded(canvas, channels):
    """uint8 [h, w, channels] of an RGB canvas (uint8 [h, w, 3]) saved as a PNG and decoded with
    `channels`, as folder_ds.read_image decodes a file: the canvas itself for 3 channels, its one
    channel for 1 where it is grey (R = G = B, which PNG decoding keeps as it is), else the PNG
    round trip in memory (the decoder's own colour-to-grey weights)."""
    if channels == 3:
        return canvas
    if channels == 1 and (canvas[..., :1] == canvas).all():
        return canvas[..., :1]
    import tensorflow as tf
    return tf.io.decode_png(tf.io.encode_png(canvas), channels=channels).numpy()


class FastGenerator:
    """predict.translate(generator, src, batch_size=1, mode=mode) for the page, the same numbers
    without its per-call costs: the generator runs through one tf.function per inference mode,
    traced once for its input shape (`warm_up`), instead of eagerly layer by layer; BatchNorm's
    moving statistics are saved and restored inside paper mode's function, and eval mode, which
    never changes them, skips that. One call at a time: Gradio runs the page's events in threads,
    and two paper-mode calls must not interleave their saving and restoring."""

    def __init__(self, generator):
        import tensorflow as tf
        self.generator = generator
        self.input_shape = generator.input_shape  # [None, h, w, c], as the Keras model's
        self.img_shape = tuple(generator.input_shape[1:])
        moving = [v for v in generator.non_trainable_variables if "moving" in v.path]  # as predict.translate

        def paper(x):
            saved = [tf.identity(v.value) for v in moving]
            fake = generator(x, training=True)
            for variable, value in zip(moving, saved):
                variable.assign(value)  # after the call: tf.function keeps the program's order
            return fake

        spec = [tf.TensorSpec([None, *self.img_shape], tf.float32)]
        self.calls = {"eval": tf.function(lambda x: generator(x, training=False), input_signature=spec),
                      "paper": tf.function(paper, input_signature=spec)}
        self.lock = threading.Lock()

    def __call__(self, src, mode="eval"):
        """float [n, h, w, c] in [-1, 1] -> float32 numpy [n, h, w, c'] in [-1, 1]."""
        import numpy as np

        from utils import check_images
        if mode not in INFERENCE_MODES:
            raise ValueError(f"mode must be one of {', '.join(INFERENCE_MODES)}, got {mode!r}")
        src = check_images(src, "images", self.img_shape).astype(np.float32)
        with self.lock:
            return np.asarray(self.calls[mode](src))

    def warm_up(self):
        """Trace and run both modes once, so that the page's first stroke is not the slow one."""
        import numpy as np
        for mode in INFERENCE_MODES:
            self(np.zeros((1, *self.img_shape), np.float32), mode)
        return self


MODE_TEXT = {"eval": "eval: dropout off, BatchNorm's moving averages (deterministic)",
             "paper": "paper: as in training, dropout on and BatchNorm with this image's own statistics "
                      "(a new draw at every stroke)"}
HOW_TO = {"inpaint": "Draw a digit in white, or start from an example, then cut a hole with the red pen "
                     "(or the button): the generator fills what is red.",
          "edges2digit": "Sketch the outline of a digit in white on black: thin lines, as an edge map.",
          "edges2fashion": "Sketch the outline of a shoe or a bag in white on black: thin lines, as an edge map.",
          "denoise": "Draw a digit in white and scatter noise around it.",
          "superres": "Draw a blurry, blocky digit in white.",
          None: "Draw on one of the validation inputs, or upload an image: it is read as `predict` reads "
                "a file (resized or centre-cropped to the generator's size)."}


def run_translation(generator, cfg, canvas, mode):
    """(net input, output, note) for the page: uint8 [h, w] or [h, w, 3] images, at the generator's size,
    of what the net sees and what it makes of it, and a line of predict's notes on unusual inputs.
    generator: a Keras model (run by predict.translate) or a FastGenerator."""
    from tools.predict import UNUSUAL, translate, unusual_inputs
    from visual import to_uint8
    src = from_canvas(canvas, generator.input_shape[1:], cfg)
    fake = generator(src, mode) if isinstance(generator, FastGenerator) else translate(generator, src, 1, mode)
    found = unusual_inputs(src, cfg.task, photos=cfg.kind == "photos")
    note = " ".join(f"Note: this drawing {UNUSUAL[kind]}." for kind, hits in found.items() if hits)
    as_image = lambda x: x[0, ..., 0] if x.shape[-1] == 1 else x[0]  # noqa: E731  [h, w] or [h, w, 3]
    return as_image(to_uint8(src)), as_image(to_uint8(fake)), note


def to_data_url(canvas):
    """A canvas (uint8 [h, w, 3]) as the page's canvas takes it: a PNG data URL (str)."""
    import base64
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def from_data_url(url, img_shape):
    """The page's canvas as it sends it, a PNG data URL of the generator's size (img_shape: h, w, c),
    as uint8 [h, w, 3]: its pixels exactly (the canvas is opaque: its alpha, all 255, is dropped);
    ValueError for anything else."""
    import base64
    import binascii
    import io

    import numpy as np
    from PIL import Image
    header, _, data = (url or "").partition(",")
    try:
        if header != "data:image/png;base64":
            raise ValueError("not a PNG data URL")
        with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as image:
            if image.format != "PNG" or image.size != (img_shape[1], img_shape[0]):
                raise ValueError(f"a {image.format} of {image.size[0]}x{image.size[1]}, not a PNG of "
                                 f"{img_shape[1]}x{img_shape[0]}")
            return np.asarray(image.convert("RGB"))
    except (binascii.Error, OSError, ValueError, Image.DecompressionBombError) as e:  # OSError: not an image
        raise ValueError(f"the canvas sent something else than its picture ({e})") from e


def canvas_html(cfg, img_shape):
    """The canvas's HTML (for demo_canvas.js): the tools, then a <canvas> of the generator's size
    (img_shape: h, w, c), shown CANVAS_SIDE pixels on its longer side. Tools: for the MNIST tasks
    a white pen (+1) and a black one (-1), and for inpainting the red hole pen, 2 pixels wide; for
    a folder run one pen of any colour (a colour picker), 1/64 of the width; then the eraser (it
    paints back the picture the drawing started from), undo, redo and the brush size."""
    height, width = img_shape[:2]
    if cfg.kind == "mnist":
        pens = {**MNIST_PENS, **({"red hole": "#%02x%02x%02x" % HOLE_RGB} if cfg.task == "inpaint" else {})}
        tools = "".join(f'<button class="tool" value="{colour}" style="background: {colour}; color: '
                        f'{"#000000" if colour == "#ffffff" else "#ffffff"}">{name}</button>'
                        for name, colour in pens.items())
        brush = 2
    else:
        tools = '<label>pen <input class="tool" type="color" value="#ffffff" aria-label="pen colour"></label>'
        brush = max(2, width // 64)
    tools = tools.replace('class="tool"', 'class="tool chosen"', 1)  # the first pen is in hand
    scale = CANVAS_SIDE / max(height, width)
    return (f'<div class="tools">{tools}<button class="tool" value="erase">eraser</button>'
            '<button class="undo">undo</button><button class="redo">redo</button>'
            f'<label>brush <input class="size" type="range" min="1" max="{max(8, max(height, width) // 8)}" '
            f'value="{brush}"></label></div>'
            f'<canvas width="{width}" height="{height}" style="width: {round(width * scale)}px"></canvas>')


def drawing_canvas(gr, cfg, img_shape, canvas):
    """The page's canvas, a gr.HTML of canvas_html run by demo_canvas.js; its value is the picture
    as a PNG data URL (to_data_url of `canvas`, uint8 [h, w, 3], to start with), and its `input`
    event fires when a stroke ends, an undo or a redo."""
    with open(CANVAS_JS) as f:
        script = f.read()
    return gr.HTML(to_data_url(canvas), html_template=canvas_html(cfg, img_shape), js_on_load=script,
                   apply_default_css=False, label="Draw here", elem_id="canvas", container=True, padding=True)


def build_app(generator, cfg, examples=None, mode="auto", title="pix2pix"):
    """The demo page as a gradio.Blocks: launch it with `serve`, or `.launch()` in a notebook.
    generator: a Keras model [n, h, w, c] -> [n, h, w, c'] in [-1, 1]; cfg: the run's Config;
    examples: float [k, h, w, c] inputs to start from, or None. The generator is wrapped in a
    FastGenerator and run once in each mode here, so that the first stroke is answered as fast as
    the others."""
    import numpy as np

    from tools.predict import auto_mode
    gr = import_gradio()
    task, img_shape = cfg.task, generator.input_shape[1:]
    blank = np.zeros((*img_shape[:2], 3), np.uint8)  # black: -1, the MNIST background
    first = blank if examples is None else to_canvas(examples[0], task)
    generator = FastGenerator(generator).warm_up()

    def canvas_of(value):  # the page's canvas value (a PNG data URL) as uint8 [h, w, 3]
        return from_data_url(value, img_shape) if value else blank

    def update(value, chosen_mode):
        return run_translation(generator, cfg, canvas_of(value), chosen_mode)

    def start_from(canvas, chosen_mode):
        return to_data_url(canvas), *run_translation(generator, cfg, canvas, chosen_mode)

    with gr.Blocks(title=f"{title} demo", analytics_enabled=False) as app:
        gr.Markdown(f"### {title}: {task or 'image pairs'}, {img_shape[0]}x{img_shape[1]}, "
                    f"{img_shape[2]} channel(s)\n{HOW_TO.get(task if cfg.kind == 'mnist' else None, HOW_TO[None])}")
        with gr.Row():
            canvas = drawing_canvas(gr, cfg, img_shape, first)
            with gr.Column():
                net_input, output = (gr.Image(label=label, format="png", image_mode=None, interactive=False,
                                              elem_id=elem_id, elem_classes="pixels", height=200)
                                     for label, elem_id in (("What the net sees", "net-input"),
                                                            ("Generator output", "net-output")))
        with gr.Row():
            chosen = gr.Radio(list(INFERENCE_MODES), value=auto_mode(cfg) if mode == "auto" else mode,
                              label="Inference mode", elem_id="mode",
                              info=" / ".join(MODE_TEXT[m] for m in INFERENCE_MODES))
            note = gr.Markdown(elem_id="note")
        results = [net_input, output, note]
        with gr.Row():
            clear = gr.Button("Clear: a blank canvas", elem_id="clear")
            clear.click(lambda m: start_from(blank, m), [chosen], [canvas, *results])
            if task == "inpaint":
                cut = gr.Button("Cut a random square hole, as in training", elem_id="cut-hole")
                cut.click(lambda value, m: start_from(random_hole(canvas_of(value), img_shape, cfg), m),
                          [canvas, chosen], [canvas, *results])
            upload = gr.Image(label="Or upload an image", type="filepath", sources=["upload"], height=140,
                              elem_id="upload")
        if examples is not None:
            gallery = gr.Gallery([to_canvas(x, task) for x in examples], label="Validation inputs of the run: "
                                 "click one to start from it", columns=EXAMPLES, height=180,
                                 allow_preview=False, elem_id="examples", elem_classes="pixels")

            def pick(chosen_mode, event: gr.SelectData):  # Gradio passes the click as `event`
                return start_from(to_canvas(examples[event.index], task), chosen_mode)
            gallery.select(pick, [chosen], [canvas, *results])
        canvas.input(update, [canvas, chosen], results, trigger_mode="always_last")
        chosen.change(update, [canvas, chosen], results)
        upload.upload(lambda path, m: start_from(read_upload(path, img_shape, cfg), m), [upload, chosen],
                      [canvas, *results])
        app.load(update, [canvas, chosen], results)
    return app


def random_hole(canvas, img_shape, cfg):
    """The canvas (uint8 [h, w, 3]) with one more square hole, drawn as in training
    (tasks.mask_square with the run's hole sizes), painted red."""
    import numpy as np

    from tasks import mask_square
    masked, _ = mask_square(from_canvas(canvas, img_shape, cfg), cfg.hole_min, cfg.hole_max)
    return to_canvas(np.asarray(masked)[0], "inpaint")


def read_upload(path, img_shape, cfg):
    """An uploaded image file as a canvas: read by predict.load_inputs as `predict` reads it."""
    from tools.predict import load_inputs
    return to_canvas(load_inputs([path], img_shape, cfg.load_size, task=cfg.task)[0], cfg.task)


def serve(app, host=HOST, port=PORT, open_browser=False, block=True, inline=None):
    """Launch `app` on host:port (port None: the first free one from 7860) with nothing fetched
    from the internet: no share link, no analytics, the theme's fonts served locally.
    block=False returns once it is up; inline=True also shows it in a notebook cell."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: serving on {host}:{port}: anyone who can reach this port can use the demo, and this "
              f"machine's CPU or GPU; leave --host out to serve this machine only")
    try:  # quiet: no "To create a public link, set `share=True`" hint (this page has none); our own URL line
        app.launch(server_name=host, server_port=port, inbrowser=open_browser, share=False, css=CSS, inline=inline,
                   footer_links=[], prevent_thread_lock=True, quiet=True)
    except OSError as e:  # taken between check_serving and now
        raise OSError(f"cannot serve on {host}:{port} ({e}); choose another --port") from e
    print(f"* Running on local URL:  {app.local_url.rstrip('/')}", flush=True)
    if block:
        app.block_thread()  # until Ctrl-C, as launch() blocks without prevent_thread_lock


def demo(model_path, host=HOST, port=PORT, mode="auto", open_browser=True):
    """`python pix2pix.py demo`: open the run of `model_path` (its folder or its generator.keras)
    and serve its page until Ctrl-C."""
    check_serving(host, port)
    from tools.predict import auto_mode
    generator, run, examples = open_run(model_path)
    if run is None:
        print(f"note: no config.json beside {model_path}: no example inputs, read as a folder run's images")
    mode = auto_mode(run) if mode == "auto" else mode
    title = os.path.basename(RunFiles.of_model(model_path).folder)  # the run's folder: runs/pix2pix -> pix2pix
    serve(build_app(generator, run or Config(), examples, mode, title=title),
          host, port, open_browser)
