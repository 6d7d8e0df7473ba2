"""Tacotron decoder products with prepacked oneDNN weights, for CPU synthesis (docs/synthesizer.md).

>>> from synthesizer.model import build_tacotron
>>> decoder = build_tacotron().decoder.eval()
>>> kernels = DecoderKernels.build(decoder)
>>> x = torch.randn(2, decoder.res_rnn1.input_size)
>>> state = (torch.zeros(2, decoder.res_rnn1.hidden_size), torch.zeros(2, decoder.res_rnn1.hidden_size))
>>> h, c = kernels.rnn1(x, state)
>>> want_h, want_c = decoder.res_rnn1(x, state)
>>> bool(torch.allclose(h, want_h, atol=1e-5)), bool(torch.allclose(c, want_c, atol=1e-5))
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from utils.packed_linear import PackedLinear


class PackedLSTMCell:
    """:class:`torch.nn.LSTMCell` (gate order i, f, g, o) with one packed product over ``[x; h]``."""

    def __init__(self, cell: nn.LSTMCell) -> None:
        weight = torch.cat([cell.weight_ih, cell.weight_hh], dim=1)  # (4H, I + H)
        bias = cell.bias_ih + cell.bias_hh if cell.bias else None
        self.linear = PackedLinear(weight, bias)

    def __call__(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        hidden, cell = state
        gates = self.linear(torch.cat([x, hidden], dim=1))  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)
        cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(cell), cell


class PackedGRUCell:
    """:class:`torch.nn.GRUCell` (gate order r, z, n) with packed input and hidden products."""

    def __init__(self, cell: nn.GRUCell) -> None:
        self.input = PackedLinear(cell.weight_ih, cell.bias_ih if cell.bias else None)
        self.hidden = PackedLinear(cell.weight_hh, cell.bias_hh if cell.bias else None)

    def __call__(self, x: Tensor, hidden: Tensor) -> Tensor:
        gi_r, gi_z, gi_n = self.input(x).chunk(3, dim=1)  # (B, H) each
        gh_r, gh_z, gh_n = self.hidden(hidden).chunk(3, dim=1)
        r = torch.sigmoid(gi_r + gh_r)
        z = torch.sigmoid(gi_z + gh_z)
        n = torch.tanh(gi_n + r * gh_n)
        return torch.lerp(n, hidden, z)  # (1 - z)·n + z·h


@dataclass(frozen=True)
class DecoderKernels:
    """The decoder's large products, packed: what :meth:`Decoder.forward <synthesizer.model.Decoder.forward>`
    uses instead of its modules when given ``kernels`` (inference only: no zoneout)."""

    attn_rnn: PackedGRUCell
    rnn_input: PackedLinear
    rnn1: PackedLSTMCell
    rnn2: PackedLSTMCell
    mel_proj: PackedLinear

    @classmethod
    def build(cls, decoder: nn.Module) -> "DecoderKernels":
        """Pack ``decoder``'s current weights (a 76 MB copy for RTVC's model)."""
        with torch.no_grad():
            return cls(
                attn_rnn=PackedGRUCell(decoder.attn_rnn),
                rnn_input=PackedLinear(decoder.rnn_input.weight, decoder.rnn_input.bias),
                rnn1=PackedLSTMCell(decoder.res_rnn1),
                rnn2=PackedLSTMCell(decoder.res_rnn2),
                mel_proj=PackedLinear(decoder.mel_proj.weight, decoder.mel_proj.bias),
            )

    @staticmethod
    def source_version(decoder: nn.Module) -> tuple[tuple[int, int], ...]:
        """Identity and in-place version of every packed weight: a change means the kernels are stale."""
        modules = (decoder.attn_rnn, decoder.rnn_input, decoder.res_rnn1, decoder.res_rnn2, decoder.mel_proj)
        return tuple((p.data_ptr(), p._version) for m in modules for p in m.parameters())
