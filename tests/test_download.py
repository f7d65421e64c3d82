"""`python pix2pix.py download NAME` (tools/download.py), offline: a real HTTP server on 127.0.0.1 in a
thread serves tiny archives built here (a fake facades: 3/2/2 pairs of 64x32 JPEGs, with the layout
table patched to match). It can serve Range requests, drop the connection half-way, ignore ranges,
answer 404 or an HTML page."""
import http.server
import io
import os
import re
import tarfile
import threading

import numpy as np
import pytest
from PIL import Image

from config import PAPER_DATASETS
from tools import cli, download

pytestmark = pytest.mark.slow  # the learner's subset leaves it out: -m "not slow"

ARCHIVE = "/sets/facades.tar.gz"
TINY = download.Layout({"train": 3, "val": 2, "test": 2}, (64, 32))
HTML = b"<!DOCTYPE html><html><body>Please log in</body></html>"


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.files; server.modes says how to answer each request in turn ("ok" once they run
    out): "drop" sends half the body and closes, "norange" ignores Range, "404", "html" (text/html),
    "html-binary" (an HTML body sent as application/octet-stream)."""
    timeout = 5  # a stuck connection ends

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append({"path": self.path, "range": self.headers.get("Range")})
        mode = server.modes.pop(0) if server.modes else "ok"
        if mode == "html":
            return self.answer(200, HTML, "text/html; charset=utf-8")
        if mode == "html-binary":
            return self.answer(200, HTML, "application/octet-stream")
        body = server.files.get(self.path)
        if mode == "404" or body is None:
            return self.answer(404, b"not found", "text/plain")
        wanted = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        if not wanted or mode == "norange":
            return self.answer(200, body, "application/x-gzip", drop=mode == "drop")
        start = int(wanted.group(1))
        if start >= len(body):
            return self.answer(416, b"", "text/plain", {"Content-Range": f"bytes */{len(body)}"})
        self.answer(206, body[start:], "application/x-gzip", {"Content-Range": f"bytes {start}-{len(body) - 1}/"
                                                                              f"{len(body)}"}, drop=mode == "drop")

    def answer(self, status, body, kind, headers=None, drop=False):
        """Send the status, headers announcing the whole body, and the body (only half of it for drop:
        HTTP/1.0 then closes the connection, so the client sees it end early)."""
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body[:len(body) // 2] if drop else body)


@pytest.fixture
def server():
    """A ThreadingHTTPServer on 127.0.0.1 (a free port), stopped after the test."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.files, httpd.requests, httpd.modes = {}, [], []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/sets"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def tiny_facades(monkeypatch):
    """The layout table expects the tiny facades built here; the client gives up after 5 s."""
    monkeypatch.setitem(download.LAYOUTS, "facades", TINY)
    monkeypatch.setattr(download, "TIMEOUT", 5)


@pytest.fixture(autouse=True)
def tiny(monkeypatch):
    tiny_facades(monkeypatch)


def jpeg(width, height, seed):
    """The bytes of a noisy JPEG (noise keeps it from compressing to nothing)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    data = io.BytesIO()
    Image.fromarray(pixels).save(data, "JPEG")
    return data.getvalue()


def make_archive(counts=(("train", 3), ("val", 2), ("test", 2)), size=(64, 32), top="facades", extra=()):
    """A .tar.gz as the authors' archives are: TOP/split/N.jpg, folders included; `extra`: more
    (name, bytes) members."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        def add(name, content=None):
            info = tarfile.TarInfo(name)
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content) if content is not None else None)

        add(top)
        for split, n in counts:
            add(f"{top}/{split}")
            for i in range(n):
                add(f"{top}/{split}/{i + 1}.jpg", jpeg(*size, seed=100 * len(split) + i))
        for name, content in extra:
            add(name, content)
    return data.getvalue()


def fails_in_one_line(excinfo):
    """The error's message, checked to be a single line."""
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def test_a_complete_archive_becomes_a_folder_of_pairs(tmp_path, server, capsys):
    server.files[ARCHIVE] = make_archive()
    folder = download.download("facades", str(tmp_path), server.url)
    assert folder == str(tmp_path / "facades")
    assert os.listdir(tmp_path) == ["facades"]  # no archive, no .part, no temporary folder
    from tools.folder_ds import get_folder_ds  # TensorFlow: imported by this test only
    from tools.image_files import find_pairs
    assert [len(find_pairs(folder, split)) for split in ("train", "val", "test")] == [3, 2, 2]
    train, val, steps, channels = get_folder_ds(folder, val_size=2, crop_size=32, load_size=0, verbose=False)
    src, target = next(iter(train))
    assert steps == 3 and channels == (3, 3) and src.shape == target.shape == (1, 32, 32, 3)
    out = capsys.readouterr()
    assert out.out.count("\n") == 1 and "train 3, val 2, test 2" in out.out and "facades.tar.gz deleted" in out.out
    assert f"python pix2pix.py --data {folder} --direction BtoA" in out.out
    assert f"downloading {server.url}/facades.tar.gz" in out.err and "received" in out.err
    assert server.requests == [{"path": ARCHIVE, "range": None}]


def test_a_truncated_archive_is_refused_and_leaves_nothing(tmp_path, server):
    whole = make_archive()
    server.files[ARCHIVE] = whole[:len(whole) * 6 // 10]  # the server's own file is cut: Content-Length agrees
    with pytest.raises(ValueError) as excinfo:
        download.download("facades", str(tmp_path), server.url)
    assert "damaged or truncated" in fails_in_one_line(excinfo)
    assert os.listdir(tmp_path) == []  # no facades/, no .facades-XXXX/, and the damaged archive removed


def test_a_dropped_connection_resumes_with_a_range_request(tmp_path, server):
    whole = make_archive()
    server.files[ARCHIVE] = whole
    server.modes = ["drop"]
    with pytest.raises(OSError) as excinfo:
        download.download("facades", str(tmp_path), server.url)
    assert "dropped" in fails_in_one_line(excinfo) and "resume" in str(excinfo.value)
    part = tmp_path / "facades.tar.gz.part"
    kept = part.stat().st_size
    assert 0 < kept < len(whole) and sorted(os.listdir(tmp_path)) == ["facades.tar.gz.part"]
    download.download("facades", str(tmp_path), server.url)
    assert server.requests[1]["range"] == f"bytes={kept}-"
    assert os.listdir(tmp_path) == ["facades"]
    assert sorted(os.listdir(tmp_path / "facades" / "train")) == ["1.jpg", "2.jpg", "3.jpg"]


def test_a_server_that_ignores_the_range_restarts_from_zero(tmp_path, server):
    server.files[ARCHIVE] = make_archive()
    server.modes = ["drop", "norange"]
    with pytest.raises(OSError):
        download.download("facades", str(tmp_path), server.url)
    download.download("facades", str(tmp_path), server.url)  # 200 with the whole file: the .part starts over
    assert server.requests[1]["range"] is not None
    assert os.listdir(tmp_path) == ["facades"]


def test_a_part_already_whole_is_finished_without_downloading(tmp_path, server):
    whole = make_archive()
    server.files[ARCHIVE] = whole
    (tmp_path / "facades.tar.gz.part").write_bytes(whole)  # the last run stopped before the rename
    download.download("facades", str(tmp_path), server.url)  # the server answers 416: nothing left to send
    assert server.requests == [{"path": ARCHIVE, "range": f"bytes={len(whole)}-"}]
    assert os.listdir(tmp_path) == ["facades"]


def test_404_names_the_url_and_suggests_a_mirror(tmp_path, server):
    with pytest.raises(OSError) as excinfo:
        download.download("facades", str(tmp_path), server.url)
    message = fails_in_one_line(excinfo)
    assert f"{server.url}/facades.tar.gz: 404" in message and "--mirror" in message
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("mode", ["html", "html-binary"])
def test_an_html_page_instead_of_the_archive_is_refused(tmp_path, server, mode):
    server.files[ARCHIVE] = make_archive()
    server.modes = [mode]
    with pytest.raises(ValueError) as excinfo:
        download.download("facades", str(tmp_path), server.url)
    assert "HTML page" in fails_in_one_line(excinfo) and server.url in str(excinfo.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("archive, expected", [
    (dict(counts=(("train", 4), ("val", 2), ("test", 2))), "facades/train/ holds 4 images, expected 3"),
    (dict(counts=(("train", 3), ("val", 2))), "no facades/test/ folder"),
    (dict(size=(64, 64)), "is 64x64, expected 64x32"),
])
def test_a_layout_that_does_not_match_the_table_is_refused(tmp_path, server, archive, expected):
    server.files[ARCHIVE] = make_archive(**archive)
    with pytest.raises(ValueError) as excinfo:
        download.download("facades", str(tmp_path), server.url)
    assert expected in fails_in_one_line(excinfo)
    assert os.listdir(tmp_path) == ["facades.tar.gz"]  # no folder, no temporary folder; the archive is kept


def test_an_archive_without_a_top_folder_is_taken_as_the_splits(tmp_path, server):
    data = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(make_archive())) as tar, tarfile.open(fileobj=data, mode="w:gz") as out:
        for member in tar.getmembers()[1:]:  # facades/train/1.jpg -> train/1.jpg
            content = tar.extractfile(member)
            member.name = member.name.split("/", 1)[1]
            out.addfile(member, content)
    server.files[ARCHIVE] = data.getvalue()
    download.download("facades", str(tmp_path), server.url)
    assert os.listdir(tmp_path) == ["facades"]
    assert sorted(os.listdir(tmp_path / "facades")) == ["test", "train", "val"]
    assert os.stat(tmp_path / "facades").st_mode & 0o777 == 0o755


def test_an_interruption_while_extracting_leaves_no_half_folder(tmp_path, server, monkeypatch):
    server.files[ARCHIVE] = make_archive()

    def interrupted(*args, **kwargs):  # Ctrl-C once every file is out, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "check_layout", interrupted)
    with pytest.raises(RuntimeError) as excinfo:
        download.download("facades", str(tmp_path), server.url)
    assert "interrupted" in fails_in_one_line(excinfo) and "facades.tar.gz is kept" in str(excinfo.value)
    assert os.listdir(tmp_path) == ["facades.tar.gz"]
    monkeypatch.undo()
    tiny_facades(monkeypatch)
    download.download("facades", str(tmp_path), server.url)  # the next call uses the kept archive
    assert os.listdir(tmp_path) == ["facades"] and len(server.requests) == 1


def test_an_unsafe_member_path_is_refused(tmp_path, server):
    server.files[ARCHIVE] = make_archive(extra=[("facades/../../evil.txt", b"gotcha")])
    to = tmp_path / "data"
    with pytest.raises(ValueError) as excinfo:
        download.download("facades", str(to), server.url)
    assert "unsafe path" in fails_in_one_line(excinfo)
    assert os.listdir(to) == [] and not (tmp_path / "evil.txt").exists()


def test_an_existing_folder_is_never_overwritten(tmp_path, server):
    server.files[ARCHIVE] = make_archive()
    (tmp_path / "facades").mkdir()
    (tmp_path / "facades" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError) as excinfo:
        download.download("facades", str(tmp_path), server.url)
    assert "already exists" in fails_in_one_line(excinfo) and "--to" in str(excinfo.value)
    assert server.requests == [] and (tmp_path / "facades" / "mine.txt").read_text() == "keep me"


def test_the_command_line_downloads_and_fails_in_one_line(tmp_path, server, capsys):
    server.files[ARCHIVE] = make_archive()
    cli.main(["download", "facades", "--to", str(tmp_path), "--mirror", server.url + "/"])
    assert os.path.isdir(tmp_path / "facades")
    assert "python pix2pix.py --data" in capsys.readouterr().out
    with pytest.raises(SystemExit) as excinfo:  # now the folder exists
        cli.main(["download", "facades", "--to", str(tmp_path), "--mirror", server.url])
    assert re.fullmatch(r"pix2pix\.py download: error: .*already exists.*", str(excinfo.value))


def test_the_table_covers_the_paper_data_sets_and_the_urls():
    assert sorted(download.LAYOUTS) == sorted(PAPER_DATASETS)
    assert download.archive_url("maps") == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/maps.tar.gz"
    assert download.archive_url("maps", "https://host/x/") == "https://host/x/maps.tar.gz"
    with pytest.raises(ValueError):
        download.archive_url("maps", "host/x")
