"""Linear layers whose weights are reordered once for oneDNN: fast small-batch products on a CPU
(measurements: docs/design.md).

>>> weight, bias, x = torch.randn(8, 4), torch.randn(8), torch.randn(2, 4)
>>> bool(torch.allclose(PackedLinear(weight, bias)(x), torch.nn.functional.linear(x, weight, bias), atol=1e-5))
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def onednn_bf16_supported() -> bool:
    """Whether this CPU runs oneDNN's bf16 products natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class PackedLinear:
    """``y = x·Wᵀ + b`` with a copy of ``W`` prepacked for oneDNN where possible (a plain copy elsewhere).

    ``dtype`` defaults to the weight's; ``batch_hint`` is the typical number of rows per call."""

    def __init__(self, weight: Tensor, bias: Tensor | None, dtype: torch.dtype | None = None,
                 batch_hint: int = 1) -> None:
        dtype = weight.dtype if dtype is None else dtype
        self.weight = weight.detach().to(dtype).contiguous().clone()
        self.bias = None if bias is None else bias.detach().to(dtype).contiguous().clone()
        self.packed: Tensor | None = None
        packable = (dtype == torch.float32 and torch.backends.mkldnn.is_available()) or (
            dtype == torch.bfloat16 and onednn_bf16_supported())
        if self.weight.device.type == "cpu" and packable:
            try:
                packed = torch.ops.mkldnn._reorder_linear_weight(self.weight, batch_hint)
                probe = torch.zeros(2, self.weight.size(1), dtype=dtype)
                torch.ops.mkldnn._linear_pointwise(probe, packed, self.bias, "none", [], "")
                self.packed = packed
            except (AttributeError, RuntimeError, NotImplementedError):  # an op missing from this build
                self.packed = None

    def _uses_packed(self, x: Tensor) -> bool:
        return self.packed is not None and x.dtype == self.weight.dtype and x.device.type == "cpu"

    def __call__(self, x: Tensor) -> Tensor:
        if self._uses_packed(x):
            return torch.ops.mkldnn._linear_pointwise(x.contiguous(), self.packed, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)

    def add(self, x: Tensor, other: Tensor) -> Tensor:
        """``x·Wᵀ + b + other`` (the addition fused into the product on oneDNN)."""
        if self._uses_packed(x):
            return torch.ops.mkldnn._linear_pointwise.binary(x.contiguous(), other, self.packed, self.bias, "add")
        return F.linear(x, self.weight, self.bias).add_(other)
