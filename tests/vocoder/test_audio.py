"""Vocoder signal conventions: labels, mu-law (checked against a reference formula and librosa)."""

from __future__ import annotations

import librosa
import numpy as np
import torch

from vocoder.audio import (
    decode_mu_law,
    encode_mu_law,
    float_2_label,
    label_2_float,
)

RNG = np.random.default_rng(1234)
SIGNAL = np.concatenate([np.linspace(-1.0, 1.0, 20001), RNG.uniform(-1.0, 1.0, 5000), [0.0, -1.0, 1.0]])


def reference_mu_law_labels(x: np.ndarray, mu: int) -> np.ndarray:
    """The RTVC formula written out independently: compand with mu - 1, then round half up."""
    m = mu - 1.0
    companded = np.sign(x) * np.log(1.0 + m * np.abs(x)) / np.log(1.0 + m)
    return np.floor((companded + 1.0) / 2.0 * m + 0.5)


def test_label_2_float_endpoints_and_linearity() -> None:
    labels = np.arange(512)
    values = label_2_float(labels, bits=9)
    assert values[0] == -1.0 and values[-1] == 1.0
    np.testing.assert_allclose(np.diff(values), 2 / 511, rtol=1e-12)


def test_float_2_label_inverts_label_2_float_and_clips() -> None:
    labels = np.arange(512, dtype=np.float64)
    np.testing.assert_allclose(float_2_label(label_2_float(labels, 9), 9), labels, atol=1e-9)
    np.testing.assert_allclose(label_2_float(float_2_label(SIGNAL, 9), 9), SIGNAL, atol=1e-12)
    assert float_2_label(np.array([-3.0, 3.0]), 9).tolist() == [0.0, 511.0]


def test_encode_mu_law_matches_reference_formula() -> None:
    labels = encode_mu_law(SIGNAL, mu=512)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, reference_mu_law_labels(SIGNAL, 512))
    assert labels.min() == 0 and labels.max() == 511
    assert np.all(np.diff(encode_mu_law(np.linspace(-1.0, 1.0, 20001), mu=512)) >= 0)  # monotonic
    # every class is reachable: the decoded value of each label encodes back to it
    all_labels = np.arange(512)
    np.testing.assert_array_equal(encode_mu_law(decode_mu_law(all_labels, mu=512), mu=512), all_labels)
    assert encode_mu_law(np.array([0.0]), mu=512)[0] == 256


def test_mu_law_round_trip_error_is_half_a_step() -> None:
    decoded = decode_mu_law(encode_mu_law(SIGNAL, mu=512), mu=512)
    error = np.abs(decoded - SIGNAL)
    # Half a companded step (1/511) times the expansion slope ln(512)/511·(1 + 511|x|), plus rounding slack.
    bound = (1 / 511) * np.log(512) / 511 * (1 + 511 * np.minimum(np.abs(SIGNAL) + 0.02, 1.0)) + 1e-9
    assert np.all(error <= bound)
    assert error.max() < 0.013
    quiet = np.abs(SIGNAL) < 0.01
    assert error[quiet].max() < 2e-4  # mu-law keeps quiet passages precise


def test_decode_without_labels_inverts_the_companding_exactly() -> None:
    companded = np.sign(SIGNAL) * np.log1p(511 * np.abs(SIGNAL)) / np.log(512)
    np.testing.assert_allclose(decode_mu_law(companded, mu=512, from_labels=False), SIGNAL, atol=1e-12)


def test_mu_law_agrees_with_librosa_continuous_companding() -> None:
    # librosa's mu is our mu - 1 (its mu=255 is 8-bit mu-law, which we call mu=256).
    compressed = librosa.mu_compress(SIGNAL, mu=255, quantize=False)
    expanded = librosa.mu_expand(compressed, mu=255, quantize=False)
    np.testing.assert_allclose(decode_mu_law(compressed, mu=256, from_labels=False), expanded, atol=1e-12)
    np.testing.assert_allclose(decode_mu_law(compressed, mu=256, from_labels=False), SIGNAL, atol=1e-12)
    # Our labels are librosa's continuous value rounded to the nearest of 256 levels.
    ours = label_2_float(encode_mu_law(SIGNAL, mu=256), bits=8)
    assert np.abs(ours - compressed).max() <= 1 / 255 + 1e-12


def test_torch_versions_equal_numpy() -> None:
    x = torch.from_numpy(SIGNAL)
    labels = encode_mu_law(x, mu=512)
    assert labels.dtype == torch.long
    np.testing.assert_array_equal(labels.numpy(), encode_mu_law(SIGNAL, mu=512))
    # integer tensors become float32 (torch's default), hence the float32-sized tolerance
    np.testing.assert_allclose(decode_mu_law(labels, 512).numpy(), decode_mu_law(labels.numpy(), 512), atol=1e-6)
    np.testing.assert_allclose(label_2_float(labels, 9).numpy(), label_2_float(labels.numpy(), 9), atol=1e-6)
    np.testing.assert_allclose(float_2_label(x, 9).numpy(), float_2_label(SIGNAL, 9), atol=1e-12)
