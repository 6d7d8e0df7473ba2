"""The diagonal-attention score, and the trainer learning an alignment on a tiny overfit set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synthesizer.data import SynthesizerCollator, SynthesizerDataset
from synthesizer.inference import Synthesizer
from synthesizer.metrics import attention_diagonality
from synthesizer.train import train_from_args
from tests.synthesizer.test_data import tone_utterances, unit_vector, write_synthesizer_layout


def test_a_perfect_diagonal_scores_one_and_padding_is_ignored():
    attention = torch.zeros(2, 6, 5)
    attention[0] = torch.eye(6, 5)  # 5 characters read over 5 steps
    attention[0, 5] = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])  # a padded step, ignored
    attention[1, :3, :3] = torch.eye(3)  # 3 characters over 3 steps
    attention[1, 3:] = 1.0  # garbage on padded steps
    attention[1, :, 3:] = 0.5  # and on padded characters
    scores = attention_diagonality(attention, torch.tensor([5, 3]), torch.tensor([5, 3]))
    assert scores.tolist() == [1.0, 1.0]


def test_uniform_attention_scores_the_band_width_by_hand():
    # 10 characters over 5 steps: ideal positions 1, 3, 5, 7, 9 (in characters), half-width
    # max(1, 0.1 * 10) = 1, so each step's band holds exactly 2 character centres: 2 / 10.
    uniform = torch.full((1, 5, 10), 0.1)
    assert attention_diagonality(uniform, [10], [5]).item() == pytest.approx(0.2)
    # A wider band holds more: half-width 3 covers 4, 6, 6, 6, 4 centres → 26 / 50.
    assert attention_diagonality(uniform, [10], [5], band=0.3).item() == pytest.approx(0.52)


def test_stuck_and_reversed_attention_score_low():
    stuck = torch.zeros(1, 20, 20)
    stuck[0, :, 0] = 1.0
    # Only steps 0-2 (ideal positions 0.5-2.5) have the first character (centre 0.5) within 2 characters.
    assert attention_diagonality(stuck, [20], [20]).item() == pytest.approx(3 / 20)
    reversed_ = torch.flip(torch.eye(20), dims=[1]).unsqueeze(0)  # last character first
    # Only where the two diagonals cross (steps 9 and 10) is the attention within the band.
    assert attention_diagonality(reversed_, [20], [20]).item() == pytest.approx(2 / 20)


def test_numpy_alignments_of_one_utterance_are_accepted():
    assert attention_diagonality(np.eye(4, dtype=np.float32), np.array([4]), np.array([4])).tolist() == [1.0]
    with pytest.raises(ValueError, match="batch, steps, characters"):
        attention_diagonality(torch.zeros(4), [4], [4])


# ----------------------------------------------------------------------------------------------
# The synthesizer learns to align


def corpus_diagonality(checkpoint: Path, data: Path) -> float:
    """Mean score of the teacher-forced attention over every utterance (eval mode, seeded dropout)."""
    synthesizer = Synthesizer.from_checkpoint(checkpoint)
    model = synthesizer.model
    dataset = SynthesizerDataset(data, synthesizer.hparams)
    batch = SynthesizerCollator(model.r, -4.0)([dataset[index] for index in range(len(dataset))])
    torch.manual_seed(0)
    with torch.no_grad():
        output = model(batch.texts, batch.mels, batch.embeddings)
    steps = torch.div(batch.mel_lengths + model.r - 1, model.r, rounding_mode="floor")
    return attention_diagonality(output.attention, batch.text_lengths, steps).mean().item()


@pytest.mark.timeout(240)
def test_the_synthesizer_learns_a_diagonal_alignment_on_a_tiny_overfit_set(tmp_path, torch_single_thread):
    """48 random 8-letter strings of "tone speech" (each letter its own 4-frame chord, one speaker).

    Random strings cannot be memorised, so the decoder must read the text through its attention;
    with r = 4 each decoder step covers exactly one letter, and the correct alignment is the
    diagonal. RTVC's recipe (masked losses, Adam, clipping 1.0) with small sizes, pre-net dropout
    0.2 and lr 1e-2 aligns within 400 steps (measured on seeds 0-7: final scores 0.78-1.0 from about
    0.3; dropout 0.5 or 24 strings sometimes settle on a reversed alignment from the EOS instead).
    """
    data = write_synthesizer_layout(tmp_path / "data", tone_utterances(48, 8), unit_vector(0))
    args = ["align", str(data), "-m", str(tmp_path / "models"), "--quiet", "--no_tensorboard", "--num_workers", "0",
            "--seed", "4", "--sample_every", "0", "--save_every", "0", "--log_every", "100",
            "--hparams", "tts_embed_dims=32", "tts_encoder_dims=32", "tts_decoder_dims=32", "tts_postnet_dims=32",
            "tts_lstm_dims=64", "tts_encoder_K=2", "tts_postnet_K=2", "tts_num_highways=1", "tts_dropout=0.2",
            "tts_schedule=[[4, 1e-2, 100000, 8]]"]
    checkpoint = tmp_path / "models" / "align" / "synthesizer.pt"

    train_from_args([*args, "--max_steps", "1"])
    before = corpus_diagonality(checkpoint, data)
    train_from_args([*args, "--max_steps", "400"])
    after = corpus_diagonality(checkpoint, data)

    assert before < 0.4, before  # not satisfied by an untrained model
    assert after > 0.6, (before, after)
