"""The results page of `python pix2pix.py evaluate`: an index.html with one row per test image,
its input | generated | target thumbnails and its scores, worst first, so that a glance shows
where a model fails. A click on a column heading sorts the rows by it (a few lines of inline
JavaScript: no server, no CDN; the page opens from disk, offline).

    write_page(files, title, summary, columns, rows)

files: the config.RunFiles of the folder (the page is files.page, its PNG thumbnails go into the
folder files.page_images); columns: (key, heading, format) of each score; rows: dicts with
"name", "images" (input, generated, target: uint8 [h, w, c] each) and a value per column key.
"""
import glob
import html
import os
import shutil
import tempfile

import numpy as np
from PIL import Image

from utils import atomic_path

THUMBNAIL_SIDE = 128  # thumbnails are shrunk to at most this many pixels a side
SHOWN_SIDE = 96       # smaller ones are shown enlarged by a whole factor (sharp pixels) to about this
PANELS = ("input", "generated", "target")

STYLE = """body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; } td, th { padding: 3px 8px; text-align: right; white-space: nowrap; }
tbody tr:nth-child(odd) { background: #f3f3f3; } th.sort { cursor: pointer; background: #dde; }
th.sort:hover { background: #ccd; } td.name { text-align: left; } img.pixels { image-rendering: pixelated; }"""

# Sorts the rows by the clicked column: numbers as numbers, a second click reverses.
SORT_SCRIPT = """document.querySelectorAll("th.sort").forEach(th => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], col = th.cellIndex, up = th.dataset.up !== "1";
  const key = row => { const v = row.cells[col].dataset.v; return v !== "" && !isNaN(v) ? +v : v; };
  const order = (a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1);
  [...body.rows].sort(order).forEach(row => body.appendChild(row));
  th.dataset.up = up ? "1" : "0";
}));"""


def thumbnail(image, side=THUMBNAIL_SIDE):
    """uint8 [h, w, c] (c = 1 or 3) -> uint8 [h', w', c], shrunk with antialiasing so that neither
    side exceeds `side` (the aspect ratio kept); smaller images come back unchanged."""
    image = np.asarray(image, np.uint8)
    if max(image.shape[:2]) <= side:
        return image
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    picture.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(picture).reshape(picture.height, picture.width, image.shape[-1])


def save_png(image, path):
    """Write uint8 [h, w, c] as a PNG, plainly: thumbnails go into a fresh folder that is swapped in
    whole (write_page), so each file needs no atomic write of its own (one costs 10 ms, for 900)."""
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path, format="PNG")


def image_cell(href, shape):
    """<td> showing the PNG `href` of an image of `shape` [h, w, c], small ones enlarged."""
    scale = max(1, SHOWN_SIDE // max(shape[:2]))
    pixels = ' class="pixels"' if scale > 1 else ""
    return f'<td data-v=""><img src="{href}" width="{shape[1] * scale}" height="{shape[0] * scale}"{pixels}></td>'


def row_html(number, row, columns, folder_name):
    """One <tr>: rank, name, the three thumbnails (already written as folder_name/NNNN_panel.png)
    and the scores; each cell's data-v is the value the sort reads."""
    cells = [f'<td data-v="{number}">{number}</td>',
             f'<td class="name" data-v="{html.escape(row["name"])}">{html.escape(row["name"])}</td>']
    cells += [image_cell(f"{folder_name}/{number:04d}_{panel}.png", image.shape)
              for panel, image in zip(PANELS, row["images"])]
    for key, _, fmt in columns:
        value = row[key]
        cells.append(f'<td data-v="{html.escape(str(value))}">{html.escape(fmt.format(value))}</td>')
    return "<tr>" + "".join(cells) + "</tr>"


def page_html(title, summary, columns, rows, folder_name):
    """The whole page as a string: title, summary lines, and the table of `rows` in their order."""
    headings = ['<th class="sort">#</th>', '<th class="sort">name</th>']
    headings += [f"<th>{panel}</th>" for panel in PANELS]
    headings += [f'<th class="sort">{html.escape(heading)}</th>' for _, heading, _ in columns]
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in summary)
    body = "\n".join(row_html(number, row, columns, folder_name) for number, row in enumerate(rows, 1))
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
            f"<style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n<ul>{lines}</ul>\n"
            f"<table><thead><tr>{''.join(headings)}</tr></thead>\n<tbody>\n{body}\n</tbody></table>\n"
            f"<script>{SORT_SCRIPT}</script>\n</body></html>\n")


def write_page(files, title, summary, columns, rows):
    """Write files.page (index.html) and its thumbnails (files.page_images/NNNN_input.png, ...)
    for `rows` in the order given (put the worst first). The thumbnails are written into a new
    folder that then replaces the old one, and the page is renamed into place last, so an
    interrupted write leaves the previous page whole. Returns the page's path."""
    images = files.page_images
    parent, folder_name = os.path.dirname(os.path.abspath(images)), os.path.basename(images)
    os.makedirs(parent, exist_ok=True)
    for leftover in glob.glob(os.path.join(glob.escape(parent), f".{folder_name}.*")):
        shutil.rmtree(leftover, ignore_errors=True)  # from a write that was killed half-way
    new = tempfile.mkdtemp(prefix=f".{folder_name}.new-", dir=parent)
    try:
        for number, row in enumerate(rows, 1):
            row["images"] = [thumbnail(image) for image in row["images"]]
            for panel, image in zip(PANELS, row["images"]):
                save_png(image, os.path.join(new, f"{number:04d}_{panel}.png"))
        with atomic_path(files.page) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(page_html(title, summary, columns, rows, folder_name))
            replace_folder(new, images)
    finally:
        shutil.rmtree(new, ignore_errors=True)  # only left if something failed
    return files.page


def replace_folder(new, folder):
    """Put the finished folder `new` where `folder` is (two renames), then delete the old one."""
    old = None
    if os.path.isdir(folder):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.old-", dir=os.path.dirname(new))
        os.replace(folder, os.path.join(old, "previous"))
    os.replace(new, folder)
    if old:
        shutil.rmtree(old)
