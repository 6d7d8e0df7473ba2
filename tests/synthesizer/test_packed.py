"""Tests for synthesizer.packed: the packed decoder cells and products agree with the modules they replace
(the packed linear layer itself: tests/utils/test_packed_linear.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synthesizer.packed import DecoderKernels, PackedGRUCell, PackedLSTMCell
from tests.synthesizer.test_model import TEXTS, small_model, speakers


def test_packed_lstm_cell_matches_torch_over_several_steps() -> None:
    torch.manual_seed(0)
    cell = nn.LSTMCell(24, 32)
    packed = PackedLSTMCell(cell)
    want = got = (torch.zeros(2, 32), torch.zeros(2, 32))
    with torch.no_grad():
        for _ in range(20):
            x = torch.randn(2, 24)
            want, got = cell(x, want), packed(x, got)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_packed_gru_cell_matches_torch_over_several_steps() -> None:
    torch.manual_seed(0)
    cell = nn.GRUCell(24, 32)
    packed = PackedGRUCell(cell)
    want = got = torch.zeros(2, 32)
    with torch.no_grad():
        for _ in range(20):
            x = torch.randn(2, 24)
            want, got = cell(x, want), packed(x, got)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("exact_rtvc_batching", [False, True])
def test_generate_with_packed_weights_matches_the_modules(exact_rtvc_batching: bool) -> None:
    model = small_model(r=2)
    outputs = []
    for pack in (False, True):
        model.pack_cpu_weights = pack
        torch.manual_seed(5)  # the same pre-net dropout masks
        outputs.append(model.generate(TEXTS, speakers(), max_steps=60, exact_rtvc_batching=exact_rtvc_batching))
    plain, packed = outputs
    assert packed.mels.shape == plain.mels.shape
    torch.testing.assert_close(packed.mels, plain.mels, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(packed.attention, plain.attention, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(packed.stop, plain.stop, rtol=1e-3, atol=1e-4)


def test_packed_weights_follow_changes_to_the_model() -> None:
    model = small_model(r=2)
    torch.manual_seed(5)
    before = model.generate(TEXTS, speakers(), max_steps=20).mels
    first_kernels = model._decoder_kernels()
    with torch.no_grad():
        model.decoder.res_rnn1.weight_hh.mul_(3.0)  # in place, as an optimizer step would
    assert model._decoder_kernels() is not first_kernels
    torch.manual_seed(5)
    changed = model.generate(TEXTS, speakers(), max_steps=20).mels
    model.pack_cpu_weights = False
    torch.manual_seed(5)
    reference = model.generate(TEXTS, speakers(), max_steps=20).mels
    torch.testing.assert_close(changed, reference, rtol=1e-3, atol=1e-3)
    assert not torch.allclose(changed, before, atol=1e-3)


def test_packed_kernels_refuse_training_mode() -> None:
    model = small_model(r=2).train()
    decoder = model.decoder
    kernels = DecoderKernels.build(decoder)
    memory = torch.zeros(1, 3, model.memory_dims)
    state = decoder.initial_state(1, 3, model.memory_dims, memory)
    with pytest.raises(RuntimeError, match="inference"):
        decoder(memory, model.encoder_proj(memory), torch.zeros(1, 80), state, torch.ones(1, 3, dtype=torch.bool),
                False, kernels)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
def test_weights_are_really_packed_on_this_cpu_build() -> None:
    kernels = DecoderKernels.build(small_model().decoder)
    linears = (kernels.attn_rnn.input, kernels.attn_rnn.hidden, kernels.rnn_input, kernels.rnn1.linear,
               kernels.rnn2.linear, kernels.mel_proj)
    assert all(linear.packed is not None for linear in linears)
