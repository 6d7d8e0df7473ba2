"""Duration synthesizer network: shapes, padding independence, durations → path, speaking rate."""

from __future__ import annotations

import torch

from synthesizer.duration.hparams import DurationHParams
from synthesizer.duration.model import DurationSynthesizerModel, Prosody, durations_to_path, sequence_mask

SMALL = DurationHParams(encoder_channels=24, duration_channels=16, decoder_channels=24, decoder_layers=2,
                        encoder_layers=2, dropout=0.0)


def small_model(seed: int = 0) -> DurationSynthesizerModel:
    torch.manual_seed(seed)
    return DurationSynthesizerModel(SMALL, n_symbols=20).eval()


def test_training_pass_shapes_and_path_covers_every_frame():
    model = small_model()
    ids = torch.tensor([[0, 3, 0, 4, 0, 5, 0], [0, 6, 0, 7, 0, 0, 0]])
    lengths = torch.tensor([7, 5])
    mels = torch.randn(2, 80, 30)
    frame_lengths = torch.tensor([30, 12])
    out = model(ids, lengths, torch.randn(2, 256), mels, frame_lengths, prior_weight=1.0)
    assert out.mel.shape == (2, 80, 30) and out.means.shape == (2, 80, 30)
    assert out.log_durations.shape == (2, 7)
    assert out.durations.sum(1).tolist() == [30, 12]
    assert out.durations[1, 5:].sum() == 0
    assert out.mel[1, :, 12:].abs().sum() == 0  # padded frames stay zero


def test_an_item_gives_the_same_mel_alone_or_padded_in_a_batch():
    model = small_model()
    speaker = torch.randn(2, 256)
    ids = torch.tensor([[0, 3, 0, 4, 0, 5, 0], [0, 6, 0, 7, 0, 0, 0]])
    batch = model.infer(ids, torch.tensor([7, 5]), speaker)
    alone = model.infer(ids[1:, :5], torch.tensor([5]), speaker[1:])
    n = int(alone.frame_lengths[0])
    assert int(batch.frame_lengths[1]) == n
    torch.testing.assert_close(batch.mel[1, :, :n], alone.mel[0, :, :n], atol=1e-5, rtol=1e-5)


def test_durations_to_path_and_mask():
    path = durations_to_path(torch.tensor([[2, 0, 1]]), 4)[0]
    assert path.tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]
    assert sequence_mask(torch.tensor([1, 3])).tolist() == [[True, False, False], [True, True, True]]


def test_speaking_rate_scales_the_length_and_every_phoneme_keeps_a_frame():
    model = small_model()
    with torch.no_grad():
        model.duration_head.bias.fill_(2.0)  # about e² − 1 ≈ 6 frames per symbol
    ids = torch.tensor([[0, 3, 0, 4, 0, 5, 0, 6, 0]])
    normal = int(model.infer(ids, torch.tensor([9]), torch.zeros(1, 256)).frame_lengths[0])
    fast = model.infer(ids, torch.tensor([9]), torch.zeros(1, 256), Prosody(speaking_rate=2.0))
    assert abs(int(fast.frame_lengths[0]) - normal / 2) <= 5
    assert (fast.durations[0, 1::2] >= 1).all()


def test_the_decoder_starts_as_the_identity_on_the_means():
    model = small_model()
    out = model(torch.tensor([[0, 3, 0]]), torch.tensor([3]), torch.randn(1, 256), torch.randn(1, 80, 10),
                torch.tensor([10]))
    torch.testing.assert_close(out.mel, out.means)


def test_hyperparameter_ranges_are_checked_in_one_line():
    import pytest

    from utils.hparams import HParamsError

    for bad, fragment in (({"dropout": 1.5}, "dropout"), ({"decoder_kernel": 4}, "odd"),
                          ({"cleaner_names": ["nope"]}, "cleaner_names"),
                          ({"learning_rate": float("nan")}, "learning_rate")):
        with pytest.raises(HParamsError, match=fragment) as info:
            DurationHParams.from_dict(bad)
        assert "\n" not in str(info.value)
