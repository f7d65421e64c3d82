"""Scoring your own test pairs (evaluate_pairs.py): FID and KID on known features and on a randomly
initialised InceptionV3, the scores and results page of a tiny generator, the offline fallback,
folders without targets, and a page that is replaced whole or not at all."""
import json
import os
import re

import keras
import numpy as np
import pytest
import scipy.linalg
from PIL import Image
from test_folder_ds import photo_crops

from config import RunFiles
from nets import unet
from tools import evaluate_pairs, results_page
from tools.evaluate import frechet_distance, kernel_distance
from tools.folder_ds import write_pairs

pytestmark = pytest.mark.slow  # the learner's subset leaves it out: -m "not slow"

# ---------------------------------------------------------------------------------------------
# The distances on features with known answers
# ---------------------------------------------------------------------------------------------

def test_kernel_distance_known_answer_unbiased_and_larger_for_different_sets():
    # d = 1, k(x, y) = (x y + 1)^3: within A 1, within B 8, across 1 -> 1 + 8 - 2 * 1
    assert kernel_distance([[0.0], [0.0]], [[1.0], [1.0]]) == pytest.approx(7.0)
    rng = np.random.default_rng(0)
    same = [kernel_distance(rng.normal(size=(40, 8)), rng.normal(size=(40, 8))) for _ in range(30)]
    shifted = kernel_distance(rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) + 1.0)
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))  # unbiased: no offset from 0
    assert min(same) < 0 < shifted and shifted > 10 * np.std(same)
    x, y = rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) + 0.5  # the mean over subsets, as KID does
    assert kernel_distance(x, y, subset_size=50, subsets=40) == pytest.approx(kernel_distance(x, y), rel=0.1)


def test_frechet_distance_with_fewer_samples_than_features_matches_the_matrix_square_root():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 64)), 1.5 * rng.normal(size=(20, 64)) + 0.2
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a + cov_b)
                - 2 * np.trace(np.real(scipy.linalg.sqrtm(cov_a @ cov_b))))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-5)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


@pytest.fixture(scope="module")
def random_inception():
    """InceptionV3 with random weights (no download) at 75x75, its smallest input."""
    keras.utils.set_random_seed(0)
    return evaluate_pairs.inception_extractor(weights=None, side=75)


def test_fid_and_kid_on_random_inception_features(random_inception):
    photos = photo_crops(8, size=32) / 127.5 - 1                      # float [8, 32, 32, 3] in [-1, 1]
    others = photo_crops(8, size=32, seed=1) / 127.5 - 1               # the same kind of image
    white = np.full_like(photos, 0.8)                                 # a different kind
    feats = [evaluate_pairs.inception_features(random_inception, x.astype(np.float32)) for x in (photos, others, white)]
    assert feats[0].shape == (8, 2048) and np.all(np.isfinite(feats[0]))
    assert frechet_distance(feats[0], feats[0]) == pytest.approx(0.0, abs=1e-12)
    assert frechet_distance(feats[0], feats[2]) > frechet_distance(feats[0], feats[1]) > 0
    same_kind, other_kind = kernel_distance(feats[0], feats[1]), kernel_distance(feats[0], feats[2])
    assert other_kind > 2 * abs(same_kind)                            # ~0 next to a different set
    gray = evaluate_pairs.inception_features(random_inception, photos[..., :1].astype(np.float32))
    assert gray.shape == (8, 2048)                                    # grey images are repeated to RGB


# ---------------------------------------------------------------------------------------------
# A tiny generator on a folder of test pairs
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_and_pairs(tmp_path_factory):
    """A run folder with an untrained tiny 32x32 generator and a config.json (B to A, batch 1),
    and a side-by-side folder with 5 test/ pairs (and train/ pairs evaluate must not use)."""
    root = tmp_path_factory.mktemp("pairs")
    a = photo_crops(7)
    write_pairs(a[:5], 255 - a[:5], root / "data", split="test")
    write_pairs(a[5:], 255 - a[5:], root / "data", split="train")
    keras.utils.set_random_seed(0)
    generator = unet((32, 32, 3), filters=4, max_filters=8)
    files = RunFiles(str(root / "run"))
    os.makedirs(files.folder)
    generator.save(files.generator)
    with open(files.config, "w") as f:
        json.dump({"task": None, "direction": "BtoA", "batch_size": 1, "load_size": 36, "crop_size": 32}, f)
    return files, str(root / "data")


def page_rows(files):
    """(name, L1) of each row of the results page, in the page's order (the cells' data-v values:
    rank, name, three empty image cells, L1, PSNR, SSIM)."""
    with open(files.page, encoding="utf-8") as f:
        rows = f.read().split("<tr>")[2:]  # after the heading's
    values = [re.findall(r'data-v="([^"]*)"', row) for row in rows]
    return [(v[1], float(v[5])) for v in values]


def test_scores_and_page_of_a_tiny_generator(run_and_pairs, random_inception, tmp_path, capsys):
    files, data = run_and_pairs
    out = RunFiles(str(tmp_path / "scores"))
    scores = evaluate_pairs.evaluate_pairs(files.folder, data, out=out.folder, extractor=random_inception)
    assert scores["pairs"] == 5 and scores["data"].endswith("test") and scores["mode"] == "paper"
    assert [p["name"] for p in scores["per_pair"]] == [f"{i:05d}.png" for i in range(5)]
    assert scores["l1"] == pytest.approx(np.mean([p["l1"] for p in scores["per_pair"]]))
    assert scores["fid"] > 0 and np.isfinite(scores["kid"]) and "note" not in scores
    assert json.load(open(out.scores)) == json.loads(json.dumps(scores))
    rows = page_rows(out)
    assert sorted(name for name, _ in rows) == [p["name"] for p in scores["per_pair"]]  # every pair, once
    assert [l1 for _, l1 in rows] == sorted((p["l1"] for p in scores["per_pair"]), reverse=True)  # worst first
    thumbs = sorted(os.listdir(out.page_images))
    assert thumbs[:3] == ["0001_generated.png", "0001_input.png", "0001_target.png"] and len(thumbs) == 15
    assert "FID" in capsys.readouterr().out and not os.path.exists(files.scores)  # --out, not the run folder


def test_direction_picks_the_input_half(run_and_pairs, tmp_path):
    """B to A: the input thumbnail is the right half of the file, the target the left one."""
    files, data = run_and_pairs
    out = RunFiles(str(tmp_path / "o"))
    evaluate_pairs.evaluate_pairs(files.folder, data, out=out.folder, fid=False, limit=1)
    pair = np.asarray(Image.open(os.path.join(data, "test", "00000.png")), np.float32)
    shown = {p: np.asarray(Image.open(os.path.join(out.page_images, f"0001_{p}.png")), np.float32)
             for p in ("input", "target")}
    right, left = pair[:, 48:].mean(), pair[:, :48].mean()  # B = 255 - A: different brightness
    assert abs(shown["input"].mean() - right) < 3 and abs(shown["target"].mean() - left) < 3


def test_offline_leaves_fid_out_and_writes_the_rest(run_and_pairs, tmp_path, monkeypatch, capsys):
    files, data = run_and_pairs

    def offline(*args, **kwargs):  # what Keras raises when the download fails
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None -- [Errno -2] "
                        "Name or service not known")

    monkeypatch.setattr(evaluate_pairs, "inception_extractor", offline)
    out = RunFiles(str(tmp_path / "o"))
    scores = evaluate_pairs.evaluate_pairs(files.generator, data, out=out.folder)
    assert "fid" not in scores and "Name or service not known" in scores["note"]
    assert os.path.exists(out.scores) and len(page_rows(out)) == 5
    assert "note: FID and KID left out" in capsys.readouterr().out


def test_a_new_page_replaces_the_old_one_whole(run_and_pairs, tmp_path, monkeypatch):
    files, data = run_and_pairs
    out = RunFiles(str(tmp_path / "o"))
    evaluate_pairs.evaluate_pairs(files.folder, data, out=out.folder, fid=False)
    before = open(out.page).read()
    evaluate_pairs.evaluate_pairs(files.folder, data, out=out.folder, fid=False, limit=2)
    assert len(page_rows(out)) == 2 and len(os.listdir(out.page_images)) == 6  # no stale thumbnails
    calls = []

    def fail_late(image, path):  # a disk that fills up half-way through the thumbnails
        calls.append(path)
        if len(calls) > 4:
            raise OSError("the disk is full")
        return real_save(image, path)

    real_save = results_page.save_png
    monkeypatch.setattr(results_page, "save_png", fail_late)
    page = open(out.page).read()
    with pytest.raises(OSError, match="disk is full"):
        evaluate_pairs.evaluate_pairs(files.folder, data, out=out.folder, fid=False)
    assert open(out.page).read() == page != before and len(os.listdir(out.page_images)) == 6
    assert sorted(os.listdir(out.folder)) == ["index.html", "index_images", "scores.json"]  # no leftovers


@pytest.mark.parametrize("kind", ["a_only", "single_images", "train_only"])
def test_folders_without_targets_are_refused_naming_the_folder(kind, run_and_pairs, tmp_path):
    files, _ = run_and_pairs
    a = photo_crops(3)
    if kind == "a_only":
        write_pairs(a, a, tmp_path / "d", layout="ab")
        os.rename(tmp_path / "d" / "B", tmp_path / "elsewhere")
        named = str(tmp_path / "d")
    elif kind == "single_images":
        os.makedirs(tmp_path / "d" / "test")
        for i, image in enumerate(a):
            Image.fromarray(image).save(tmp_path / "d" / "test" / f"{i}.png")
        named = str(tmp_path / "d" / "test")
    else:
        write_pairs(a, a, tmp_path / "d", split="train")
        named = str(tmp_path / "d")
    with pytest.raises(ValueError, match="train/ but no test/|holds single images|no B/") as error:
        evaluate_pairs.evaluate_pairs(files.folder, str(tmp_path / "d"), out=str(tmp_path / "o"), fid=False)
    assert named in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "o").exists()  # nothing written
