"""Scores of evaluate.py on generators and images whose answers are known."""
import json
import os
import re
import warnings

import keras
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from config import RunFiles
from mnist_ds import to_unit_range
from tasks import mask_square
from tools import evaluate


@pytest.fixture(scope="module")
def classifier(digits):
    """A digit classifier trained on 300 digits (enough to beat chance by far)."""
    images, labels = digits
    model = evaluate.digit_classifier()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(to_unit_range(images[:300]), labels[:300], batch_size=32, epochs=10, verbose=0)
    return model


def test_classifier_learns_digits(classifier, digits):
    images, labels = digits
    assert evaluate.accuracy(classifier, to_unit_range(images[300:]), labels[300:]) > 0.7


def test_identity_generator_scores(classifier, digits):
    images, labels = digits
    src = keras.Input((28, 28, 1))
    identity = keras.Model(src, keras.layers.Identity()(src))  # output = the masked input
    scores = evaluate.score_generator(identity, images, labels, classifier, seed=5)
    real = to_unit_range(images)
    _, hole = mask_square(real, seed=(5, 0))
    in_hole = np.asarray(hole).astype(bool)
    assert scores["l1_region"] == pytest.approx(np.mean(np.abs(real[in_hole])), rel=1e-5)
    assert scores["grey_region"] == 1.0                       # every hole pixel is 0.0
    assert scores["acc_generated"] == scores["acc_input"]  # it changed nothing
    assert scores["acc_real"] > scores["acc_input"]
    assert scores["l1_region_input"] == scores["l1_region"] and scores["ssim_region_input"] == scores["ssim_region"]
    assert scores["frechet_generated"] == pytest.approx(scores["frechet_input"])
    assert scores["frechet_input"] > 1.0                   # holes move the features away from real ones


def test_perfect_answer_scores(classifier, digits):
    """A 'generator' that knows the answer: the scores must say so."""
    images, labels = digits
    real = to_unit_range(images)

    class Oracle:
        def predict(self, src, **kwargs):
            return real

    scores = evaluate.score_generator(Oracle(), images, labels, classifier)
    assert scores["l1_region"] == 0.0 and scores["psnr_region"] == pytest.approx(100.0 + 10 * np.log10(4))
    assert scores["acc_generated"] == scores["acc_real"]
    assert scores["grey_region"] == scores["grey_region_real"]
    assert scores["ssim_region"] == pytest.approx(1.0) and scores["ssim"] == pytest.approx(1.0)
    assert scores["psnr"] == scores["psnr_region"]
    assert scores["frechet_generated"] == pytest.approx(0.0, abs=1e-6)
    assert scores["frechet_input"] > 1.0
    table = evaluate.format_scores(scores)
    assert [line.split()[0] for line in table.splitlines()[1:4]] == ["masked", "generated", "real"]
    assert f"{scores['acc_input']:.2%}" in table.splitlines()[1]


def test_classifier_is_cached(tmp_path, monkeypatch, digits):
    monkeypatch.setattr(evaluate, "load_mnist", lambda **kwargs: (digits[0][:64], digits[1][:64]))
    path = str(tmp_path / "clf.keras")
    first = evaluate.load_or_train_classifier(path, epochs=1, verbose=False)
    second = evaluate.load_or_train_classifier(path, epochs=1, verbose=False)
    np.testing.assert_array_equal(first.get_weights()[0], second.get_weights()[0])


# ---------------------------------------------------------------------------------------------
# The metrics alone, on arrays with known answers
# ---------------------------------------------------------------------------------------------

PSNR_CAP = 10 * np.log10(4.0 / 1e-10)  # psnr of identical images: 106.02 dB


@pytest.fixture(scope="module")
def images_and_hole(digits):
    """12 real digits float32 [12, 28, 28, 1] in [-1, 1] and their seeded holes [12, 28, 28, 1]."""
    real = to_unit_range(digits[0][:12])
    return real, np.asarray(mask_square(real, seed=(3, 0))[1])


def test_identical_images_score_perfect(images_and_hole):
    real, hole = images_and_hole
    for mask in (None, hole):
        assert evaluate.l1(real, real, mask) == 0.0 and evaluate.mse(real, real, mask) == 0.0
        assert evaluate.psnr(real, real, mask) == pytest.approx(PSNR_CAP)
        assert evaluate.ssim(real, real, mask) == pytest.approx(1.0, abs=1e-12)


def test_known_offset_gives_known_errors(images_and_hole):
    real, hole = images_and_hole
    real = real * 0.9                                        # room for +0.1 inside [-1, 1]
    for mask in (None, hole):
        assert evaluate.l1(real + 0.1, real, mask) == pytest.approx(0.1, rel=1e-5)
        assert evaluate.mse(real + 0.1, real, mask) == pytest.approx(0.01, rel=1e-5)
        assert evaluate.psnr(real + 0.1, real, mask) == pytest.approx(10 * np.log10(4 / 0.01), rel=1e-5)


def test_ssim_is_standard_and_symmetric(images_and_hole):
    real, hole = images_and_hole
    noise = np.random.default_rng(0).uniform(-1, 1, real.shape).astype(np.float32)
    assert evaluate.ssim(noise, real) < 0.1 and evaluate.ssim(noise, real, hole) < 0.1
    assert evaluate.ssim(noise, real) == pytest.approx(evaluate.ssim(real, noise), abs=1e-12)
    assert evaluate.ssim(noise, real, hole) == pytest.approx(evaluate.ssim(real, noise, hole), abs=1e-12)
    blurred = scipy.ndimage.uniform_filter(real, size=(1, 3, 3, 1))
    expected = float(tf.reduce_mean(tf.image.ssim(blurred, real, max_val=2.0)))  # 11x11 Gaussian, sigma 1.5
    assert evaluate.ssim(blurred, real) == pytest.approx(expected, abs=1e-5)
    assert evaluate.ssim(noise, real) < evaluate.ssim(blurred, real) < 1.0


def test_hole_metrics_ignore_pixels_outside_the_hole(images_and_hole):
    real, hole = images_and_hole
    fake = real[::-1]                                        # other digits: wrong in the hole
    changed = np.where(hole == 1.0, fake, -fake)             # the same hole, everything else flipped
    for metric in (evaluate.l1, evaluate.mse, evaluate.psnr):
        assert metric(changed, real, hole) == metric(fake, real, hole)
        assert metric(changed, real) != metric(fake, real)
    # SSIM's 11x11 window reaches 5 pixels past the hole: pixels farther away must not count.
    near = scipy.ndimage.binary_dilation(hole == 1.0, np.ones((1, 11, 11, 1), bool))
    far_changed = np.where(near, fake, -fake)
    assert evaluate.ssim(far_changed, real, hole) == pytest.approx(evaluate.ssim(fake, real, hole), abs=1e-12)
    assert evaluate.ssim(far_changed, real) != pytest.approx(evaluate.ssim(fake, real), abs=1e-3)
    assert evaluate.ssim(np.where(hole == 1.0, real, fake), real, hole) > evaluate.ssim(fake, real, hole)


def test_frechet_distance_known_answers():
    feats = np.random.default_rng(0).normal(size=(500, 6))
    feats -= feats.mean(0)                                   # mean 0: 2 * feats + shift has mean shift
    feats[:, 4:] = 0.0                                       # ReLU units that never fire: singular covariance
    shift = np.array([0.5, -1.0, 2.0, 0.0, 0.0, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # no warnings reach the user
        assert evaluate.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)
        assert evaluate.frechet_distance(feats, feats + shift) == pytest.approx(shift @ shift, rel=1e-6)
        # Scaled by 2: S_b = 4 S_a, (S_a S_b)^(1/2) = 2 S_a, so the distance is |shift|^2 + trace(S_a).
        expected = shift @ shift + np.trace(np.cov(feats, rowvar=False))
        assert evaluate.frechet_distance(feats, 2 * feats + shift) == pytest.approx(expected, rel=1e-6)
    assert evaluate.frechet_distance(feats[:, :1], feats[:, :1] + 3.0) == pytest.approx(9.0)  # one feature


def test_classifier_features(classifier, digits):
    real = to_unit_range(digits[0][:50])
    feats = evaluate.classifier_features(classifier, real)
    assert feats.shape == (50, 128) and feats.min() >= 0.0   # ReLU outputs of the "features" layer
    # A classifier cached before the layer had a name: found as the second-to-last Dense layer.
    images = keras.Input((28, 28, 1))
    hidden = keras.layers.Dense(128, activation="relu")(keras.layers.Flatten()(images))
    old = keras.Model(images, keras.layers.Dense(10)(hidden))
    assert evaluate.classifier_features(old, real).shape == (50, 128)


def test_the_judge_cache_is_keyed_by_its_training_set(digits):
    first, other = digits[0][:100], digits[0][100:300]
    assert evaluate.classifier_cache_path(first) == evaluate.classifier_cache_path(first.copy())
    assert evaluate.classifier_cache_path(first) != evaluate.classifier_cache_path(other)
    assert "-100-" in evaluate.classifier_cache_path(first) and "-200-" in evaluate.classifier_cache_path(other)
    assert evaluate.classifier_cache_path(first, fashion=True) != evaluate.classifier_cache_path(first)


def test_the_baseline_is_a_classifier_of_the_task_inputs_and_the_table_reports_it(classifier, digits, tmp_path,
                                                                                   monkeypatch):
    """The baseline trains on inputs with holes, cached apart from the judge; a generator that
    returns its input closes none of the judge's gap, and the table shows the baseline as a
    baseline, never as "a possible" accuracy."""
    images, labels = digits[0][:300], digits[1][:300]
    monkeypatch.setattr(evaluate, "classifier_training_set", lambda fashion=False, verbose=True: (images, labels))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    ceiling = evaluate.load_or_train_classifier(epochs=1, verbose=False, task="inpaint", shipped=None)
    assert evaluate.classifier_cache_path(images, task="inpaint") != evaluate.classifier_cache_path(images)
    assert os.path.exists(evaluate.classifier_cache_path(images, task="inpaint"))
    identity = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Identity()])
    scores = evaluate.score_generator(identity, digits[0][300:400], digits[1][300:400], classifier, seed=3,
                                      baseline=ceiling)
    assert scores["acc_input"] == scores["acc_generated"] < scores["acc_real"]         # the judge, on all three
    assert scores["acc_input_baseline"] == evaluate.accuracy(ceiling, scores_inputs(digits[0][300:400]),
                                                             digits[1][300:400])
    assert scores["gap_closed"] == 0.0
    table = evaluate.format_scores(scores)
    assert f"reads the inputs {scores['acc_input_baseline']:.2%}" in table and "possible" not in table
    assert f"closes 0% of the gap: masked input {scores['acc_input']:.2%}" in table


def scores_inputs(images):
    """The masked test inputs that score_generator(..., seed=3) makes from `images`."""
    return evaluate.task_inputs(images, "inpaint", seed=3)[1]


@pytest.mark.slow
def test_evaluate_writes_the_scores_and_a_page_of_the_worst_digits_first(classifier, digits, tmp_path, monkeypatch):
    """The MNIST path keeps its table and scores.json and gains the results page: one row per digit
    (at most PAGE_ROWS), largest L1 in the hole first, with what the judge reads."""
    images, labels = digits[0][300:], digits[1][300:]                    # 100 held-out digits
    monkeypatch.setattr(evaluate, "load_for_task", lambda task, data, split: (images, labels))
    monkeypatch.setattr(evaluate, "load_or_train_classifier", lambda **kwargs: classifier)
    files = RunFiles(str(tmp_path))
    keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Identity()]).save(files.generator)
    scores = evaluate.evaluate(files.generator, "inpaint")
    assert json.load(open(files.scores))["acc_generated"] == scores["acc_generated"]
    with open(files.page, encoding="utf-8") as f:
        page = f.read()
    assert "judge reads" in page and "L1 hole" in page
    cells = [re.findall(r'data-v="([^"]*)"', row) for row in page.split("<tr>")[2:]]  # rank, name, 3 images, ...
    assert len(cells) == 100 and len(os.listdir(files.page_images)) == 300
    l1_column = [float(c[5]) for c in cells]
    assert l1_column == sorted(l1_column, reverse=True) and l1_column[0] > l1_column[-1]
    assert sum(c[-1] == "yes" for c in cells) == round(scores["acc_generated"] * 100)  # the judge's reading
    real, src, hole = evaluate.task_inputs(images)
    rows = evaluate.digit_rows(src, src, real, hole, labels, classifier, limit=7)
    assert len(rows) == 7 and [r["name"] for r in rows] == [c[1] for c in cells[:7]]
