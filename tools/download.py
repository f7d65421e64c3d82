"""`python pix2pix.py download NAME [--to DIR] [--mirror URL]`: one of the pix2pix paper's six data sets
(config.PAPER_DATASETS), from the authors' server, as a folder of A|B pairs that `--data DIR/NAME` trains on.

    download(name, to, mirror)   the whole command: fetch, check, extract, report
    fetch(url, part, archive)    HTTP download into NAME.tar.gz.part, resumed with a Range request
    extract_checked(...)         safe extraction into a hidden temporary folder, checked against LAYOUTS
    check_layout(root, layout)   the splits, their pair counts and the image size of a few files each

Nothing is left half-done: the archive is written to DIR/NAME.tar.gz.part and renamed to NAME.tar.gz only
once every byte the server announced has arrived (an interrupted download resumes from the .part's
size); it is extracted into DIR/.NAME-XXXX, which becomes DIR/NAME only after its layout was checked,
and is removed on any failure. An existing DIR/NAME is never overwritten. Standard library and PIL
only; importing this module touches neither the network nor the disk.
"""
import http.client
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from typing import NamedTuple

from config import IMAGE_SUFFIXES

BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"  # the authors' server (junyanz/pytorch-CycleGAN-
#                                      and-pix2pix, datasets/download_pix2pix_dataset.sh): BASE_URL/NAME.tar.gz
CHUNK = 256 * 1024      # bytes read per call while downloading
TIMEOUT = 60            # seconds without an answer or a byte before the connection counts as dropped
SAMPLES = 3             # images per split whose size is checked (the first, the middle, the last)
GZIP_MAGIC = b"\x1f\x8b"
MB = 1e6


class Layout(NamedTuple):
    """What a data set's archive holds once extracted: {split: pairs} (None where the count could not be
    confirmed: the split must then only exist and hold images), the size (width, height) of a whole A|B
    file (None: only checked to be of even width), and the pairs of all splits together where only that
    total is confirmed."""
    splits: dict
    size: tuple = None
    total: int = None


# The six archives' layouts. Sources (found 2026 with a code/docs search; numbers not found are None):
# - facades: 400 train (junyanz/pytorch-CycleGAN-and-pix2pix docs/datasets.md), 100 val and 106 test (a
#   facades loader's comment "train: 400, test: 106, val:100"); 512x256 (the TensorFlow pix2pix tutorial
#   splits each facades file at w // 2 into two 256x256 halves; docs/own-pairs.md).
# - cityscapes: 2975 train (docs/datasets.md) and 500 val: Cityscapes' own train and val sets (scripts that
#   fetch this archive read cityscapes/train and /val; Hugging Face huggan/cityscapes, from the same
#   images, has 3475 in all); 512x256 photo|labels (datasets/prepare_cityscapes_dataset.py, which
#   rebuilds the pairs from cityscapes-dataset.com; the authors' own script no longer downloads
#   cityscapes, for license reasons, so their server may answer 404).
# - maps: 1096 train (docs/datasets.md), 1098 val, 1200x600 aerial|map (READMEs of several maps projects:
#   "Train Folder: 1096 ... Val Folder: 1098 ... Each image is 1200x600").
# - edges2shoes: train and val (loaders read edges2shoes/train and /val), 50,025 pairs in all (Hugging
#   Face huggan/edges2shoes; docs/datasets.md: "50k training images"); the split of the total (often
#   given as 49,825 + 200) was not confirmed, so only the total is checked; 512x256 (a loader's "resize
#   images from 256 to 128" to 256x128).
# - edges2handbags: train and val (NVlabs/MUNIT scripts/demo_train_edges2handbags.sh reads both);
#   docs/datasets.md says "137K" images; no exact count and no image size were confirmed: neither is checked.
# - night2day: 17823 train, 10 val, 2287 test (a `tree` of the extracted archive in gcwl/pytorch-pix2pix
#   data/README.md; 20,120 in all, as Hugging Face huggan/night2day has); the image size was not
#   confirmed: not checked.
LAYOUTS = {
    "cityscapes": Layout({"train": 2975, "val": 500}, (512, 256)),
    "edges2handbags": Layout({"train": None, "val": None}),
    "edges2shoes": Layout({"train": None, "val": None}, (512, 256), total=50025),
    "facades": Layout({"train": 400, "val": 100, "test": 106}, (512, 256)),
    "maps": Layout({"train": 1096, "val": 1098}, (1200, 600)),
    "night2day": Layout({"train": 17823, "val": 10, "test": 2287}),
}

# Training flags that the final line suggests beyond --data: the label maps are the B side of facades and
# cityscapes (photo|labels), and the paper translates labels -> photos.
TRAIN_FLAGS = {"facades": "--direction BtoA", "cityscapes": "--direction BtoA"}
NOT_FOUND_NOTES = {"cityscapes": " (the authors withdrew cityscapes for license reasons: build it from "
                                 "cityscapes-dataset.com with their datasets/prepare_cityscapes_dataset.py)"}


def download(name, to=".", mirror=None):
    """Download data set `name` (one of PAPER_DATASETS) into the folder `to`/NAME, from `mirror` (a base
    URL holding NAME.tar.gz) or the authors' server. Raises ValueError, OSError or RuntimeError with a
    one-line message; returns the folder's path."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown data set {name!r}: one of {', '.join(sorted(LAYOUTS))}")  # LAYOUTS: PAPER_DATASETS
    target = os.path.join(to, name)
    if os.path.lexists(target):
        raise FileExistsError(f"{target} already exists: delete it, or pick another folder with --to")
    os.makedirs(to, exist_ok=True)
    archive = os.path.join(to, name + ".tar.gz")
    try:
        if os.path.isfile(archive):
            print(f"using the archive already at {archive} (delete it to download it again)", file=sys.stderr)
        else:
            fetch(archive_url(name, mirror), archive + ".part", archive)
        counts = extract_checked(archive, to, name, LAYOUTS[name])
    except KeyboardInterrupt:  # Ctrl-C: one line too, saying what is kept
        kept = next((p for p in (archive, archive + ".part") if os.path.isfile(p)), None)
        raise RuntimeError(f"interrupted; {kept} is kept: run the same command again to go on" if kept else
                           "interrupted; nothing was kept") from None
    os.remove(archive)
    print(summary(target, name, counts, archive))
    return target


def archive_url(name, mirror=None):
    """The URL of NAME.tar.gz on the authors' server, or under the base URL `mirror`."""
    base = (mirror or BASE_URL).rstrip("/")
    if not re.match(r"^(https?|ftp|file)://", base):
        raise ValueError(f"--mirror {mirror}: expected a base URL such as http://host/path (NAME.tar.gz is added)")
    return f"{base}/{name}.tar.gz"


def summary(target, name, counts, archive):
    """The line printed after a successful download: where, how many pairs, how to train on it."""
    splits = ", ".join(f"{split} {n}" for split, n in counts.items())
    flags = " ".join(filter(None, ["--data", target, TRAIN_FLAGS.get(name), "--out", f"runs/{name}"]))
    return f"{target}: {splits} pairs ({os.path.basename(archive)} deleted); train on it: python pix2pix.py {flags}"


# Downloading


def fetch(url, part, archive):
    """Download `url` into `part`, appending to what an earlier, interrupted call left there (an HTTP
    Range request; a server that answers with the whole file restarts it from zero). Renames `part` to
    `archive` once the bytes the server announced have all arrived; otherwise keeps it and raises
    OSError, so that the same command resumes."""
    start = resumable_size(part)
    response, start, total = open_url(url, start)
    if response is None:  # the .part already held the whole file (the server said so: 416 on the range)
        os.replace(part, archive)
        return
    with response:
        check_archive_headers(response, url)
        check_free_space(os.path.dirname(part) or ".", total, start)
        print(f"downloading {url}" + (f" (resuming at {start / MB:.1f} MB)" if start else ""), file=sys.stderr)
        done = copy_body(response, part, url, start, total)
    if total is not None and done != total:
        raise OSError(f"{url}: the connection dropped at {done / MB:.1f} of {total / MB:.1f} MB; {part} is kept: "
                      "run the same command again to resume")
    os.replace(part, archive)


def resumable_size(part):
    """The size of an earlier .part to resume from; 0 (and the .part removed) when it does not start like
    a gzip file, as a page saved by mistake would not."""
    if not os.path.isfile(part):
        return 0
    with open(part, "rb") as f:
        head = f.read(2)
    if head == GZIP_MAGIC:
        return os.path.getsize(part)
    os.remove(part)
    return 0


def open_url(url, start):
    """(response, start, total bytes or None) for `url` from byte `start`: a Range request when start > 0.
    A server that ignores the range (200) gives the whole file: start becomes 0. (None, start, start)
    when the .part is already whole. Errors in one line."""
    headers = {"User-Agent": "pix2pix-download", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and start:  # Range Not Satisfiable: the .part is already whole, or longer than the file
            if range_total(e.headers.get("Content-Range")) == start:
                return None, start, start
            return open_url(url, 0)
        raise http_error(e, url) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise OSError(f"cannot reach {url}: {getattr(e, 'reason', e)} (--mirror URL downloads from another "
                      "host)") from None
    status = getattr(response, "status", None) or 200
    if start:
        content_range = response.headers.get("Content-Range")
        if status == 206 and range_start(content_range) == start:
            return response, start, range_total(content_range)
        if status == 206:  # some other range: ask for the whole file
            response.close()
            return open_url(url, 0)
        print(f"{url}: the server sent the whole file, not the rest: downloading it from zero", file=sys.stderr)
    length = response.headers.get("Content-Length")
    return response, 0, int(length) if length and length.isdigit() else None


def http_error(e, url):
    """The one-line OSError for an HTTP error answer."""
    name = url.rsplit("/", 1)[-1].removesuffix(".tar.gz")
    if e.code == 404:
        return OSError(f"{url}: 404 Not Found{NOT_FOUND_NOTES.get(name, '')}; try another host with --mirror URL")
    return OSError(f"{url}: HTTP {e.code} {e.reason}; try again later, or another host with --mirror URL")


def range_start(content_range):
    """The first byte of a `Content-Range: bytes A-B/TOTAL` header, or None."""
    found = re.match(r"bytes (\d+)-\d+/", content_range or "")
    return int(found.group(1)) if found else None


def range_total(content_range):
    """TOTAL of a `Content-Range: bytes A-B/TOTAL` (or `bytes */TOTAL`) header, or None."""
    found = re.match(r"bytes [\d*-]+/(\d+)", content_range or "")
    return int(found.group(1)) if found else None


def check_archive_headers(response, url):
    """Refuse an HTML page (a login, an error or a parking page) served in place of the archive."""
    kind = response.headers.get("Content-Type", "")
    if "html" in kind.lower():
        raise ValueError(f"{url} answered with an HTML page ({kind}), not a .tar.gz archive: is the address right? "
                         "(--mirror URL downloads from another host)")


def check_free_space(folder, total, start):
    """Refuse to start when the folder cannot hold the rest of the archive and its extracted copy."""
    if total is None:
        return
    needed, free = (total - start) + total, shutil.disk_usage(folder).free
    if needed > free:
        raise OSError(f"{folder} has {free / MB:.0f} MB free, but the archive and its extracted folder need "
                      f"{needed / MB:.0f} MB: free some space or pick another folder with --to")


def copy_body(response, part, url, start, total):
    """Append the response's body to `part` (a new file when start is 0), with a progress bar; returns
    the .part's size at the end. A dropped connection ends the copy early, keeping what arrived."""
    progress = Progress(total, start)
    with open(part, "ab" if start else "wb") as f:
        while True:
            try:
                chunk = response.read(CHUNK)
            except (http.client.HTTPException, OSError):
                break  # dropped or stalled: what arrived is kept; the caller compares the size
            if not chunk:
                break
            if f.tell() == 0 and not chunk.startswith(GZIP_MAGIC):
                f.close()
                os.remove(part)
                raise ValueError(not_gzip_message(url, chunk))
            f.write(chunk)
            progress.update(len(chunk))
        done = f.tell()
    progress.finish()
    return done


def not_gzip_message(url, head):
    """Why the first bytes of an answer are not the archive."""
    if head.lstrip()[:1] == b"<":
        return f"{url} sent an HTML page, not a .tar.gz archive: is the address right? (--mirror URL)"
    return f"{url} did not send a gzip archive (its first bytes are {head[:4].hex(' ')}, not 1f 8b)"


class Progress:
    """The download's progress on stderr: one line rewritten with \\r (MB done / total, percent, rate,
    time left) when stderr is a terminal, and a final line with the size and time in every case."""

    def __init__(self, total, start=0):
        self.total, self.start, self.done = total, start, start
        self.began = self.shown = time.monotonic()
        self.live = sys.stderr.isatty()
        self.width = 0  # of the longest line drawn: a shorter one is padded over it

    def update(self, n):
        """Count n more bytes; redraw at most ten times a second."""
        self.done += n
        now = time.monotonic()
        if self.live and now - self.shown >= 0.1:
            self.shown = now
            self.draw(self.line(now), end="")

    def draw(self, line, end):
        """Rewrite the progress line."""
        self.width = max(self.width, len(line))
        print("\r" + line.ljust(self.width), end=end, file=sys.stderr, flush=True)

    def line(self, now):
        """'  312.4 / 1023.0 MB  30.5%  12.3 MB/s  58 s left' (without a total: MB and rate only)."""
        rate = (self.done - self.start) / max(now - self.began, 1e-6)
        if not self.total:
            return f"  {self.done / MB:.1f} MB  {rate / MB:.1f} MB/s"
        left = (self.total - self.done) / rate if rate else float("inf")
        return (f"  {self.done / MB:.1f} / {self.total / MB:.1f} MB  {100 * self.done / self.total:.1f}%  "
                f"{rate / MB:.1f} MB/s  {format_seconds(left)} left")

    def finish(self):
        """End the rewritten line and say what arrived in how long."""
        seconds = time.monotonic() - self.began
        if self.live:
            self.draw(self.line(time.monotonic()), end="\n")
        print(f"received {(self.done - self.start) / MB:.1f} MB in {format_seconds(seconds)}", file=sys.stderr)


def format_seconds(seconds):
    """'42 s', '7 min 5 s', '2 h 3 min'; '?' for an unknown time."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# Extracting and checking


def extract_checked(archive, to, name, layout):
    """Extract `archive` into a hidden temporary folder in `to`, check its layout, and rename it to
    `to`/NAME. The archive's top folder NAME/ (as the authors' archives have it) becomes `to`/NAME; an
    archive without one is taken as the splits themselves. Returns {split: pairs}. On any failure (or
    an interruption) the temporary folder is removed; a damaged archive is removed too, so that the
    next call downloads it again."""
    print(f"extracting {archive}", file=sys.stderr)
    tmp = tempfile.mkdtemp(dir=to, prefix=f".{name}-")
    try:
        unpack(archive, tmp)
        entries = [e for e in os.listdir(tmp) if not e.startswith(".")]
        root = os.path.join(tmp, name) if entries == [name] else tmp
        try:
            counts = check_layout(root, layout, label=name)
        except ValueError as e:
            raise ValueError(f"{e} ({archive} is kept: delete it to download it again)") from None
        target = os.path.join(to, name)
        os.rename(root, target)
        if root == tmp:
            os.chmod(target, 0o755)  # mkdtemp's folder is private (0700); NAME/ is an ordinary folder
        else:
            shutil.rmtree(tmp)
        return counts
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def unpack(archive, folder):
    """Extract every member of the gzip tar `archive` into `folder`, each checked first (member_path).
    A truncated, damaged or unsafe archive is removed (the next call downloads it afresh) and raises
    ValueError."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = (m for m in tar if member_path(m, archive))
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: the standard library's own safety net too
                tar.extractall(folder, members=members, filter="data")
            else:
                tar.extractall(folder, members=members)
    except ValueError:  # member_path: an unsafe member
        os.remove(archive)
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise  # the disk's errors (full, read-only), not the archive's
        os.remove(archive)
        raise ValueError(f"{archive} is damaged or truncated ({one_line(e)}); it was removed: run the same "
                         f"command again to download it afresh") from None


def member_path(member, archive):
    """True for a member that is safe to extract: a file or folder inside the extraction folder, or a
    link to a place inside it. Raises ValueError naming an absolute path, a '..' that leaves the folder,
    a link pointing outside, or a device file or pipe."""
    if outside(member.name):
        raise ValueError(f"{archive}: unsafe path {member.name!r} in the archive (absolute or leaving it with "
                         "'..'): not extracted; the archive was removed")
    if member.issym() or member.islnk():
        linked = member.linkname if member.islnk() else os.path.join(os.path.dirname(member.name), member.linkname)
        if outside(linked):
            raise ValueError(f"{archive}: {member.name!r} links outside the data set ({member.linkname!r}): "
                             "not extracted; the archive was removed")
    elif not (member.isfile() or member.isdir()):
        raise ValueError(f"{archive}: {member.name!r} is a device or pipe, not an image: not extracted; "
                         "the archive was removed")
    return True


def outside(path):
    """True for a member path that is absolute or leaves the extraction folder through '..'."""
    path = os.path.normpath(path.replace("\\", "/"))
    return path.startswith("/") or bool(re.match(r"^[A-Za-z]:", path)) or path == ".." or path.startswith("../")


def one_line(error):
    """An exception's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__


def check_layout(root, layout, label):
    """Check the extracted folder `root` against `layout`: every split is a folder, holds the expected
    number of images (where known; the total where only that is known), and a few of its images have
    the expected A|B size (or an even width where the size is not known). Returns {split: pairs};
    raises ValueError naming the split or file (as LABEL/split/file) and what was expected."""
    counts = {}
    for split, expected in layout.splits.items():
        folder = os.path.join(root, split)
        if not os.path.isdir(folder):
            found = sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)))
            raise ValueError(f"the archive has no {label}/{split}/ folder (expected {', '.join(layout.splits)}; "
                             f"found {', '.join(found) or 'no folders'})")
        files = images_in(folder)
        if not files or (expected is not None and len(files) != expected):
            raise ValueError(f"{label}/{split}/ holds {len(files)} images, expected "
                             f"{expected if expected is not None else 'some'}: not the archive this command knows")
        for path in sample(files):
            check_image_size(path, layout.size, f"{label}/{split}/{os.path.basename(path)}")
        counts[split] = len(files)
    if layout.total is not None and sum(counts.values()) != layout.total:
        raise ValueError(f"{label}/ holds {sum(counts.values())} images in {', '.join(counts)}, expected "
                         f"{layout.total}: not the archive this command knows")
    return counts


def images_in(folder):
    """Sorted paths of the image files directly in `folder` (hidden files skipped)."""
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder))
            if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith(".")]


def sample(files, k=SAMPLES):
    """Up to k of `files`, spread evenly: the first, the middle, the last."""
    if len(files) <= k:
        return files
    return [files[round(i * (len(files) - 1) / (k - 1))] for i in range(k)]


def check_image_size(path, size, label):
    """Raise ValueError unless `path` is a readable image of `size` (width, height), or of even width
    (an A|B pair) when size is None."""
    from PIL import Image  # only here: the module imports nothing heavy

    try:
        with Image.open(path) as image:
            width, height = image.size
    except OSError as e:
        raise ValueError(f"{label} is not a readable image ({one_line(e)})") from None
    if size is not None and (width, height) != tuple(size):
        raise ValueError(f"{label} is {width}x{height}, expected {size[0]}x{size[1]} (A|B side by side): "
                         "not the archive this command knows")
    if size is None and width % 2:
        raise ValueError(f"{label} is {width}x{height}: an odd width, so not A|B halves side by side")
