"""The browser demo (demo.py, `python pix2pix.py demo`): the one-line messages for a missing Gradio
and a taken port, and the page itself, driven in a real headless browser (Debian's chromium, driven
by Playwright): strokes drawn on the canvas change the output, which equals predict.translate of
the input the page shows, and arrive soon after each stroke (the log shows how soon: run with -s);
undo, redo, an upload's grey hole, the gallery, the eraser, clear and the hole button do what the
page says.
"""
import io
import json
import os
import socket
import statistics
import sys
import time
import types
import zipfile

import numpy as np
import pytest

from config import Config
from conftest import ROOT
from tools import cli

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from demo_load import BROWSER_FLAGS, WATCH_STROKES, draw_stroke, start_demo  # noqa: E402  the load script's page helpers

pytestmark = pytest.mark.slow  # the learner's subset leaves it out: -m "not slow"

CHROMIUM = "/usr/bin/chromium"  # Debian's package (apt-get install chromium); browser downloads fail here


def a_model_file(folder):
    """A file that passes the command line's check of --model (a zip archive, config.check_model_file),
    made without TensorFlow: the checks below come before any model is loaded."""
    path = folder / "generator.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    return str(path)


def test_demo_without_gradio_prints_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now fails, as where it is absent
    with pytest.raises(SystemExit) as stop:
        cli.parse_command(["demo", "--model", a_model_file(tmp_path)])
    assert str(stop.value) == ("pix2pix.py demo: error: the demo needs Gradio, which is not installed: "
                               "python -m pip install -r requirements-demo.txt")


def test_demo_on_a_taken_port_says_so_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setitem(sys.modules, "gradio", types.ModuleType("gradio"))  # present, for this check
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as stop:
            cli.parse_command(["demo", "--model", a_model_file(tmp_path), "--port", str(port)])
    message = str(stop.value)
    assert message.startswith(f"pix2pix.py demo: error: port {port} on 127.0.0.1 is taken")
    assert f"--port {port + 1}" in message and "\n" not in message


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, mnist_npz):
    """A run folder for 28x28 inpainting: a random two-layer convolutional generator (an untrained
    U-Net answers every input with a near-constant grey; this one follows the strokes) and its
    config.json."""
    import keras

    from utils import save_model
    folder = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(0)
    generator = keras.Sequential([keras.Input((28, 28, 1)),
                                  keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                                  keras.layers.Conv2D(1, 3, padding="same", activation="tanh")])
    save_model(generator, str(folder / "generator.keras"))
    settings = {"task": "inpaint", "data": mnist_npz, "val_size": 50, "seed": 0, "batch_size": 8,
                "hole_min": 10, "hole_max": 15}
    (folder / "config.json").write_text(json.dumps(settings))
    return folder


def serve_demo(folder, port, log_path, timeout=120):
    """`python pix2pix.py demo` in its own process, its output in log_path (demo_load.start_demo);
    returns (process, url) once it serves, or fails the test with the end of its output."""
    try:
        return start_demo(str(folder), port, log_path, "eval", timeout)
    except RuntimeError as e:
        pytest.fail(str(e))


def shown_image(page, selector, old_src=None, timeout=60):
    """(src, uint8 array) of the image in `selector`, waiting until its src differs from old_src."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        image = page.locator(f"{selector} img")
        src = image.get_attribute("src") if image.count() else None
        if src and src != old_src:
            return src, image_at(page, src)
        time.sleep(0.2)
    pytest.fail(f"{selector} showed no new image within {timeout} s")


def image_at(page, src):
    """The image at URL `src` of the page, as a uint8 array."""
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())))


def shown_until(page, selector, check, timeout=60):
    """The image in `selector` (uint8 array) once check(image) holds; fails the test after `timeout` s."""
    deadline, src = time.time() + timeout, None
    while time.time() < deadline:
        src, image = shown_image(page, selector, old_src=src, timeout=max(1, deadline - time.time()))
        if check(image):
            return image
    pytest.fail(f"{selector} never showed the image expected within {timeout} s")


def canvas_pixels(page):
    """What the page's canvas holds: uint8 [h, w, 4] (RGBA), read in the browser."""
    width, height, data = page.evaluate("""() => {
        const canvas = document.querySelector("#canvas canvas");
        const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        return [canvas.width, canvas.height, Array.from(pixels)];
    }""")
    return np.array(data, np.uint8).reshape(height, width, 4)



LATENCY_STROKES = 5
LATENCY_BOUND_S = 5.0  # for the median, generous: well under a second here (docs/demo.md), more on a busy CI machine


def stroke_latencies(page, count=LATENCY_STROKES):
    """Seconds from each of `count` strokes' pointer release to the new output image shown, for
    strokes drawn one after another (each waits for its output): vertical white lines at different
    places, so that each changes the output (an unchanged output keeps its URL and shows nothing new)."""
    page.evaluate(WATCH_STROKES)
    latencies = []
    for i in range(count):
        shown = page.evaluate("window.outputsShown.length")
        x = 0.08 + 0.84 * i / max(1, count - 1)
        draw_stroke(page, [(x, 0.05), (x, 0.5), (x, 0.95)])
        page.wait_for_function(f"window.outputsShown.length > {shown}", timeout=60000)
        page.wait_for_timeout(300)  # a late second output of the same stroke would be counted by the next
        up, outputs = page.evaluate("[window.strokeUps.at(-1), window.outputsShown.slice(%d)]" % shown)
        latencies.append((outputs[-1] - up) / 1000)
    return latencies


def test_drawing_in_the_browser_translates_as_predict_does(tiny_run, digits, tmp_path):
    pytest.importorskip("gradio", reason="the demo needs Gradio: pip install -r requirements-demo.txt")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs Playwright: pip install "
                                                                "playwright")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no {CHROMIUM}: apt-get install chromium")
    from PIL import Image

    from tools.predict import translate
    from utils import load_generator
    from visual import to_uint8
    holed = digits[0][0].copy()                                     # an upload: a digit with a grey 128 hole
    holed[8:20, 8:20] = 128
    Image.fromarray(holed).save(tmp_path / "holed.png")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=BROWSER_FLAGS, headless=True)
        server, url = serve_demo(tiny_run, port, tmp_path / "demo.log")
        try:
            page = browser.new_page()
            requests = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(url)
            first_src, first_output = shown_image(page, "#net-output")
            first_input_src, first_input = shown_image(page, "#net-input")
            assert page.locator("#mode input[value=eval]").is_checked()  # the mode is stated, and --mode's
            page.get_by_role("button", name="white ink").click()
            draw_stroke(page, [(0.1, 0.1), (0.5, 0.9), (0.9, 0.2)])  # a white V across the digit
            _, output = shown_image(page, "#net-output", old_src=first_src)
            _, net_input = shown_image(page, "#net-input", old_src=first_input_src)
            latencies = stroke_latencies(page)
            for _ in range(LATENCY_STROKES + 1):                      # every stroke undone: the example again
                page.get_by_role("button", name="undo").click()
            shown_until(page, "#net-input", lambda image: np.array_equal(image, first_input))
            page.get_by_role("button", name="redo").click()            # the V again
            shown_until(page, "#net-input", lambda image: np.array_equal(image, net_input))
            page.locator("#upload input[type=file]").set_input_files(str(tmp_path / "holed.png"))
            uploaded = shown_until(page, "#net-input", lambda image: (image[8:20, 8:20] == 128).all())
            uploaded_canvas = canvas_pixels(page)
            page.locator("#examples img").first.click()                 # the gallery: the first example again
            shown_until(page, "#net-input", lambda image: np.array_equal(image, first_input))
            line = [(0.2, 0.5), (0.8, 0.5)]
            draw_stroke(page, line)
            shown_until(page, "#net-input", lambda image: not np.array_equal(image, first_input))
            page.get_by_role("button", name="eraser").click()           # the same line erased: the example again
            draw_stroke(page, line)
            shown_until(page, "#net-input", lambda image: np.array_equal(image, first_input))
            page.get_by_role("button", name="Clear: a blank canvas").click()
            shown_until(page, "#net-input", lambda image: (image == 0).all())  # black: -1 everywhere
            page.get_by_role("button", name="Cut a random square hole, as in training").click()
            cut = shown_until(page, "#net-input", lambda image: (image == 128).any())
        finally:
            server.terminate()
            server.wait(timeout=30)
            browser.close()
    assert output.shape == net_input.shape == (28, 28)
    assert (net_input == 128).sum() >= 50  # the example's red hole reached the net as 0.0 (grey 128)
    assert (uploaded_canvas[8:20, 8:20, :3] == (255, 0, 0)).all()   # the upload's grey hole: red on the canvas,
    assert (uploaded[8:20, 8:20] == 128).all()                       # and the hole (0.0) for the net
    assert 10 <= np.sqrt((cut == 128).sum()) <= 15                   # one square of the run's hole sizes
    assert np.abs(output.astype(int) - first_output).max() > 10  # the drawing changed the output
    src = net_input[None, ..., None] / 127.5 - 1.0                 # what the page says the net saw
    expected = to_uint8(translate(load_generator(str(tiny_run / "generator.keras")), src))[0, ..., 0]
    assert np.abs(output.astype(int) - expected).max() <= 2  # the PNG rounding of the input (<= 0.004), through the net
    assert not [r for r in requests if r.startswith("http") and not r.startswith(url)]  # nothing from outside
    print(f"\nstroke to output, {len(latencies)} strokes after the first output (28x28, load {load_average()}): "
          f"median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s, all "
          + ", ".join(f"{t:.3f}" for t in latencies))
    assert statistics.median(latencies) < LATENCY_BOUND_S
    assert "share=True" not in (tmp_path / "demo.log").read_text()  # Gradio's hint: this demo has no share link


def load_average():
    """The 1-, 5- and 15-minute load averages of this machine, as /proc/loadavg gives them."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def test_a_folder_run_gets_its_validation_inputs_and_reads_drawings_as_predict(tmp_path):
    """Without a browser: the examples of a folder run (RGB, 16x16) are its validation inputs, a
    canvas goes back to the net unchanged, and an uploaded file is read as `predict` reads it."""
    from PIL import Image

    from tools.demo import from_canvas, load_examples, read_upload, to_canvas
    from tools.folder_ds import get_folder_ds, write_pairs
    from tools.predict import load_inputs
    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, (6, 16, 32, 3), dtype=np.uint8)  # A|B pairs
    write_pairs(pictures[:4, :, :16], pictures[:4, :, 16:], str(tmp_path / "pairs"), split="train")
    write_pairs(pictures[4:, :, :16], pictures[4:, :, 16:], str(tmp_path / "pairs"), split="val")
    settings = Config(task=None, data=str(tmp_path / "pairs"), load_size=0, seed=0, val_size=50)
    examples = load_examples(settings, (16, 16, 3))
    val_src = next(iter(get_folder_ds(str(tmp_path / "pairs"), load_size=0, crop_size=16, verbose=False)[1]))[0]
    np.testing.assert_array_equal(examples, np.asarray(val_src))       # the run's own validation inputs
    canvas = to_canvas(examples[0], task=None)                           # uint8 [16, 16, 3]
    np.testing.assert_allclose(from_canvas(canvas, (16, 16, 3), settings)[0], examples[0], atol=1e-6)
    upload = tmp_path / "big.png"
    Image.fromarray(rng.integers(0, 256, (40, 24, 3), dtype=np.uint8)).save(upload)  # centre-cropped to 16
    expected = load_inputs([str(upload)], (16, 16, 3), load_size=0)[0]
    np.testing.assert_allclose(read_upload(str(upload), (16, 16, 3), settings) / 127.5 - 1, expected, atol=1e-6)


def test_the_canvas_sends_its_pixels_exactly_and_nothing_else():
    """The canvas's value, a PNG data URL: from_data_url gives back every pixel of to_data_url's,
    and of an RGBA canvas as the browser sends it (alpha 255, dropped); another size, another
    format or no picture is refused."""
    import base64

    from tools.demo import from_data_url, to_data_url
    rng = np.random.default_rng(0)
    canvas = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(from_data_url(to_data_url(canvas), (20, 30, 1)), canvas)
    rgba = np.concatenate([canvas, np.full((20, 30, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_array_equal(from_data_url(to_data_url(rgba), (20, 30, 3)), canvas)
    jpeg = "data:image/png;base64," + base64.b64encode(b"\xff\xd8\xff\xe0 not a png").decode()
    for wrong in (to_data_url(canvas[:10]), jpeg, "data:text/plain,hello", "", None):
        with pytest.raises(ValueError, match="the canvas sent"):
            from_data_url(wrong or "", (20, 30, 1))


@pytest.mark.parametrize("task, channels, load_size", [("inpaint", 1, 286), (None, 3, 286), (None, 1, 0),
                                                      ("inpaint", 3, 0)])
def test_a_canvas_reaches_the_net_as_predict_reads_it_from_a_png_file(task, channels, load_size, tmp_path):
    """from_canvas reads the canvas in memory, bit for bit what predict.load_inputs reads from the
    canvas saved as a PNG (then the red hole cut): grey, coloured and red-holed canvases, as 1 or
    3 channels, resized (a 1:1 resize) or centre-cropped, and a canvas of another size."""
    from PIL import Image

    from tasks import cut_hole
    from tools.demo import from_canvas
    from tools.predict import load_inputs
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.integers(0, 256, (20, 20, 1), dtype=np.uint8), 3, axis=-1)
    holed = grey.copy()
    holed[4:11, 5:12] = (255, 0, 0)
    canvases = [grey, holed, rng.integers(0, 256, (20, 20, 3), dtype=np.uint8),
                rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)]  # the last: another size than the net's
    settings = Config(task=task, load_size=load_size)
    for i, canvas in enumerate(canvases):
        Image.fromarray(canvas).save(tmp_path / f"{i}.png")
        expected = load_inputs([str(tmp_path / f"{i}.png")], (20, 20, channels), load_size, task=task)
        if task == "inpaint":
            red = (canvas[..., 0] > 200) & (canvas[..., 1] < 60) & (canvas[..., 2] < 60)
            if canvas.shape[:2] == (20, 20):
                expected = np.asarray(cut_hole(expected, red[None, ..., None].astype(np.float32)))
            else:
                continue  # a hole drawn at another size than the net's: not a case the page makes
        got = from_canvas(canvas, (20, 20, channels), settings)
        assert got.dtype == np.float32 and got.shape == (1, 20, 20, channels)
        np.testing.assert_array_equal(got, expected)


def test_the_page_s_compiled_generator_gives_predict_s_numbers_and_keeps_batchnorm_s_averages():
    """FastGenerator, the demo's tf.function per mode: eval gives predict.translate's numbers, paper
    draws anew each call (dropout) and leaves BatchNorm's moving statistics as they were."""
    import keras

    from nets import unet
    from tools.demo import FastGenerator
    from tools.predict import translate
    keras.utils.set_random_seed(0)
    generator = unet((16, 16, 1), filters=4, max_filters=8)
    moving = [v for v in generator.non_trainable_variables if "moving" in v.path]
    for v in moving:  # averages unlike a fresh BatchNorm's, so that eval and paper differ
        v.assign(np.random.default_rng(1).uniform(0.5, 1.5, v.shape).astype(np.float32))
    before = [v.numpy().copy() for v in moving]
    fast = FastGenerator(generator).warm_up()
    src = np.random.default_rng(2).uniform(-1, 1, (1, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(fast(src, "eval"), translate(generator, src, 1, "eval"), atol=1e-6)
    first, second = fast(src, "paper"), fast(src, "paper")
    assert np.abs(first - second).max() > 1e-3                      # dropout: a new draw every call
    assert all(np.array_equal(v.numpy(), b) for v, b in zip(moving, before))
    no_dropout = unet((16, 16, 1), filters=4, max_filters=8, dropout=0.0)
    np.testing.assert_allclose(FastGenerator(no_dropout)(src, "paper"), translate(no_dropout, src, 1, "paper"),
                               atol=1e-6)                               # paper mode is translate's, less dropout
    with pytest.raises(ValueError, match="mode must be one of"):
        fast(src, "train")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_colorize_run_on_photos_shows_its_validation_photos_in_the_browser(tmp_path):
    """A run made with --task colorize from a folder of photos, at a wide 32x64 crop: the page is a
    photo run's (its own kind, Config.kind), its pen takes any colour and a stroke reaches the net,
    and its examples are the run's validation photos, grey and wide."""
    pytest.importorskip("gradio", reason="the demo needs Gradio: pip install -r requirements-demo.txt")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs Playwright")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no {CHROMIUM}: apt-get install chromium")
    from PIL import Image
    from test_photo_folders import write_photos

    from nets import unet
    from utils import save_model
    photos = tmp_path / "photos"
    write_photos(photos / "train"), write_photos(photos / "val", n=4, seed=1)
    run = tmp_path / "run"
    run.mkdir()
    save_model(unet((32, 64, 1), out_channels=3, filters=4, max_filters=8), str(run / "generator.keras"))
    (run / "config.json").write_text(json.dumps({"task": "colorize", "data": str(photos), "crop_size": "32x64",
                                                 "load_size": 0, "batch_size": 4, "val_size": 4}))
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=BROWSER_FLAGS, headless=True)
        server, url = serve_demo(run, free_port(), tmp_path / "demo.log")
        try:
            page = browser.new_page()
            page.goto(url)
            shown_image(page, "#net-output")
            input_src, _ = shown_image(page, "#net-input")
            assert "colorize, 32x64" in page.content()
            assert page.locator("#canvas input[type=color]").count() == 1  # a photo run's pen takes any colour
            draw_stroke(page, [(0.05, 0.52), (0.95, 0.52)])                 # a white line across, rows 16-17
            _, drawn = shown_image(page, "#net-input", old_src=input_src)
            examples = page.locator("#examples img")
            examples.first.wait_for(timeout=60000)
            assert examples.count() == 4                               # the 4 validation photos
            example = np.asarray(Image.open(io.BytesIO(page.request.get(examples.first.get_attribute("src")).body())))
        finally:
            server.terminate()
            server.wait(timeout=30)
            browser.close()
    assert example.shape[:2] == drawn.shape[:2] == (32, 64)            # wide, as the crop
    assert (drawn[16:18, 4:60] == 255).all()                           # the stroke (2 pixels wide), as drawn
    red, green = example[..., 0].astype(int), example[..., 1].astype(int)
    assert np.abs(red - green).max() <= 2                               # grey, colorize's input (lossy thumbnails)
    assert "no example inputs" not in (tmp_path / "demo.log").read_text()
