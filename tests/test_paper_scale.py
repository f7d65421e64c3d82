"""benchmarks/paper_scale.py at its --quick size (64x64, 8 pairs, 4 steps): the synthetic set has the
facades layout, both implementations train, the table has every column, the segmenter beats chance."""
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import paper_scale  # noqa: E402

pytestmark = pytest.mark.slow  # the learner's subset leaves it out: -m "not slow"


def test_quick_run_trains_both_and_scores_them(tmp_path, capsys):
    out = tmp_path / "bench"
    assert paper_scale.main(["--quick", "--seeds", "0", "--out", str(out), "--variant", "fp32=--precision fp32",
                             "--modes", "paper,eval"]) == 0
    printed = capsys.readouterr().out

    # the facades layout: train/ val/ test/ of photo | labels files, A the photo, B the flat label map
    for split, count in paper_scale.QUICK_SPLITS.items():
        files = sorted(os.listdir(out / "data" / split))
        assert len(files) == count and all(f.endswith(".png") for f in files)
        assert Image.open(out / "data" / split / files[0]).size == (128, 64)  # 2 x 64 wide, 64 high
    photos, labels = paper_scale.read_split(str(out / "data"), "test")
    assert photos.shape == labels.shape == (4, 64, 64, 3)
    assert np.array_equal(paper_scale.PALETTE[paper_scale.label_classes(labels)], labels)  # labels: palette only

    # both implementations and the variant trained and saved a generator, each scored in both modes;
    # the table has every column and row
    result = json.loads((out / "results.json").read_text())
    scored = {(row["implementation"], row["mode"]): row for row in result["rows"]}
    names = ("project", "reference", "project, fp32")
    assert set(scored) == {(name, mode) for name in names for mode in ("paper", "eval")}
    rows = {name: scored[name, "paper"] for name in names}
    for row in rows.values():
        assert os.path.isfile(row["generator"]) and row["steps"] == 4 and row["minutes"] > 0
        assert row["s_per_step"] > 0
        assert 0 <= row["l1"] <= 2 and np.isfinite(row["psnr"]) and -1 <= row["ssim"] <= 1
        assert 0 <= row["pixel_acc"] <= 1 and 0 <= row["mean_iou"] <= 1
    assert "--direction BtoA" in rows["project"]["command"] and "--max-epoch-steps 4" in rows["project"]["command"]
    assert rows["project, fp32"]["command"].endswith("--precision fp32 --load-size 72 --crop-size 64")
    assert scored["project", "eval"]["generator"] == rows["project"]["generator"]
    header = next(line for line in printed.splitlines() if line.startswith("| implementation"))
    assert [c.strip() for c in header.strip("|").split("|")] == list(paper_scale.COLUMNS)
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert len(table) == 8 and all(line.count("|") == len(paper_scale.COLUMNS) + 1 for line in table)
    assert "Command: `python benchmarks/paper_scale.py --quick" in printed

    # the FCN-score's segmenter reads the real photos better than always naming the commonest class
    assert result["real"]["pixel_acc"] > result["majority"]

    # --resume with a new variant of its own steps trains only that variant and the one whose flags
    # changed; the rest is kept as it was
    kept = ("project", "reference")
    made = {name: os.path.getmtime(rows[name]["generator"]) for name in names}
    segmenter = os.path.getmtime(out / "segmenter.keras")
    assert paper_scale.main(["--quick", "--seeds", "0", "--out", str(out), "--resume", "--modes", "eval", "--variant",
                             "longer=--steps 6 --ema 0", "--variant", "fp32=--precision fp32 --ema 0"]) == 0
    resumed = {row["implementation"]: row for row in json.loads((out / "results.json").read_text())["rows"]}
    assert set(resumed) == {*names, "project, longer"}
    assert {name: os.path.getmtime(resumed[name]["generator"]) for name in kept} == {n: made[n] for n in kept}
    assert os.path.getmtime(resumed["project, fp32"]["generator"]) > made["project, fp32"]
    assert resumed["project, fp32"]["command"].endswith("--precision fp32 --ema 0 --load-size 72 --crop-size 64")
    assert os.path.getmtime(out / "segmenter.keras") == segmenter
    assert resumed["reference"]["ssim"] == scored["reference", "eval"]["ssim"]  # the cached score
    longer = resumed["project, longer"]
    assert longer["steps"] == 6 and "--max-epoch-steps 6 --seed 0 --ema 0" in longer["command"]
    assert os.path.isfile(longer["generator"])


def test_variant_steps_and_resume_are_checked():
    args = paper_scale.parse_args(["--steps", "10", "--variant", "a=--steps 30 --lr 4e-4", "--variant", "b=--ema 0"])
    assert args.variants == {"project, a": (["--lr", "4e-4"], 30), "project, b": (["--ema", "0"], 10)}
    for argv in (["--variant", "a=--steps"], ["--variant", "a=--steps x"], ["--resume", "--score-only"]):
        with pytest.raises(SystemExit):
            paper_scale.parse_args(argv)


def test_set_is_made_from_its_seed_and_textures_tell_same_coloured_classes_apart(tmp_path):
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    photo_a, labels_a = paper_scale.render(paper_scale.make_scene(rng_a), rng_a)
    photo_b, labels_b = paper_scale.render(paper_scale.make_scene(rng_b), rng_b)
    assert np.array_equal(photo_a, photo_b) and np.array_equal(labels_a, labels_b)
    scene = paper_scale.Scene(64)
    scene.rect(1, 0, 64, 0, 32)  # h-stripes and v-stripes: the same brick colour, different textures
    scene.rect(2, 0, 64, 32, 64)
    photo, _ = paper_scale.render(scene, np.random.default_rng(0))
    left, right = photo[:, :32].astype(float).mean(-1), photo[:, 32:].astype(float).mean(-1)
    assert abs(left.mean() - right.mean()) < 20  # alike in colour
    assert left.mean(axis=1).std() > 3 * left.mean(axis=0).std()  # h-stripes vary down the rows
    assert right.mean(axis=0).std() > 3 * right.mean(axis=1).std()  # v-stripes across the columns


def test_epochs_split_the_steps_into_passes_of_at_most_the_set():
    assert paper_scale.epochs_for(600, 400) == (2, 300)
    assert paper_scale.epochs_for(800, 400) == (2, 400)
    assert paper_scale.epochs_for(4, 8) == (1, 4)
    for steps in (1, 7, 401, 999):
        epochs, per_epoch = paper_scale.epochs_for(steps, 400)
        assert epochs * per_epoch == steps and per_epoch <= 400


def test_progress_frames_give_the_steady_step_time():
    # two epochs of 4 steps at 0.5 s a step after a slow first step, each with its repeated last frame
    frames = [(1, 4, 10.0), (2, 4, 10.5), (3, 4, 11.0), (4, 4, 11.5), (4, 4, 14.0),
              (1, 4, 20.0), (2, 4, 20.5), (4, 4, 21.5), (4, 4, 23.0)]
    assert paper_scale.steady_step_time(frames) == pytest.approx(0.5)
    assert paper_scale.steady_step_time([]) is None
