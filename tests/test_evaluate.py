"""Scores of evaluate.py on generators whose answers are known."""
import keras
import numpy as np
import pytest

import evaluate
from mnist_ds import mask_square, to_unit_range


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
    scores = evaluate.inpainting_scores(identity, images, labels, classifier, seed=5)
    real = to_unit_range(images)
    _, hole = mask_square(real, seed=(5, 0))
    in_hole = np.asarray(hole).astype(bool)
    assert scores["l1_hole"] == pytest.approx(np.mean(np.abs(real[in_hole])), rel=1e-5)
    assert scores["grey_hole"] == 1.0                       # every hole pixel is 0.0
    assert scores["acc_generated"] == scores["acc_masked"]  # it changed nothing
    assert scores["acc_real"] > scores["acc_masked"]


def test_perfect_answer_scores(classifier, digits):
    """A 'generator' that knows the answer: the scores must say so."""
    images, labels = digits
    real = to_unit_range(images)

    class Oracle:
        def predict(self, src, **kwargs):
            return real

    scores = evaluate.inpainting_scores(Oracle(), images, labels, classifier)
    assert scores["l1_hole"] == 0.0 and scores["psnr_hole"] == pytest.approx(100.0 + 10 * np.log10(4))
    assert scores["acc_generated"] == scores["acc_real"]
    assert scores["grey_hole"] == scores["grey_hole_real"]


def test_classifier_is_cached(tmp_path, monkeypatch, digits):
    monkeypatch.setattr(evaluate, "load_mnist", lambda **kwargs: (digits[0][:64], digits[1][:64]))
    path = str(tmp_path / "clf.keras")
    first = evaluate.load_or_train_classifier(path, epochs=1, verbose=False)
    second = evaluate.load_or_train_classifier(path, epochs=1, verbose=False)
    np.testing.assert_array_equal(first.get_weights()[0], second.get_weights()[0])
