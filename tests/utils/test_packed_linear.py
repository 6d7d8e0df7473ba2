"""Tests for utils.packed_linear: oneDNN-packed products equal F.linear, and fall back where they cannot pack."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from utils.packed_linear import PackedLinear, onednn_bf16_supported

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")


@needs_onednn
@pytest.mark.parametrize("batch", [1, 3, 48])
def test_float32_is_packed_and_matches_f_linear(batch: int) -> None:
    torch.manual_seed(0)
    weight, bias, x, other = torch.randn(96, 64), torch.randn(96), torch.randn(batch, 64), torch.randn(batch, 96)
    linear = PackedLinear(weight, bias, batch_hint=batch)
    assert linear.packed is not None
    torch.testing.assert_close(linear(x), F.linear(x, weight, bias), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(linear.add(x, other), F.linear(x, weight, bias) + other, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(PackedLinear(weight, None)(x), F.linear(x, weight), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not onednn_bf16_supported(), reason="this CPU has no native bf16")
def test_bf16_is_packed_and_close_to_float32() -> None:
    torch.manual_seed(0)
    weight, bias, x = torch.randn(96, 64), torch.randn(96), torch.randn(8, 64)
    linear = PackedLinear(weight, bias, torch.bfloat16, 8)
    assert linear.packed is not None and linear(x.bfloat16()).dtype == torch.bfloat16
    torch.testing.assert_close(linear(x.bfloat16()).float(), F.linear(x, weight, bias), rtol=0.05, atol=0.2)


def test_weights_are_copied_and_other_dtypes_stay_unpacked() -> None:
    weight = torch.ones(4, 3)
    packed = PackedLinear(weight, None)
    weight.zero_()
    assert packed(torch.ones(1, 3)).tolist() == [[3.0] * 4]
    double = PackedLinear(torch.ones(4, 3, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))
    assert double.packed is None
    total = double.add(torch.ones(1, 3, dtype=torch.float64), torch.ones(1, 4, dtype=torch.float64))
    assert total.tolist() == [[4.0] * 4]
