"""Speaker-consistency loss: its front-end against the encoder's librosa one, de-emphasis against the
IIR, and the real GE2E encoder telling a copy of a voice from another voice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoder.audio import wav_to_mel_spectrogram
from encoder.hparams import EncoderHParams
from synthesizer.audio import load_wav
from synthesizer.hparams import SynthesizerHParams
from tests.vocoder.istft.test_train import QUIET, TINY
from utils.checkpoints import load_checkpoint_file
from vocoder.istft.hparams import ISTFTHParams
from vocoder.istft.spectral import deemphasis, preemphasis
from vocoder.istft.speaker_loss import EncoderFrontEnd, SpeakerConsistencyLoss, deemphasis_fft
from vocoder.istft.train import main, train_from_args

PREEMPHASIS = ISTFTHParams().signal.preemphasis


@pytest.fixture(scope="module")
def speaker_loss(encoder_checkpoint) -> SpeakerConsistencyLoss:
    return SpeakerConsistencyLoss.from_checkpoint(encoder_checkpoint, PREEMPHASIS, 16000)


def emphasised(wav: np.ndarray) -> torch.Tensor:
    return preemphasis(torch.from_numpy(np.asarray(wav, np.float32))[None], PREEMPHASIS)  # (1, L)


def test_front_end_equals_the_encoders_librosa_mel(speech_clip):
    expected = wav_to_mel_spectrogram(speech_clip)  # (frames, 40)
    ours = EncoderFrontEnd(EncoderHParams())(torch.from_numpy(speech_clip)[None])[0].numpy()
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_fft_deemphasis_inverts_preemphasis_like_the_iir(speech_clip):
    signal = emphasised(speech_clip)
    reference, _ = deemphasis(signal[0].numpy(), PREEMPHASIS)
    ours = deemphasis_fft(signal, PREEMPHASIS)[0].numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    np.testing.assert_allclose(ours, speech_clip, atol=1e-5)


def test_real_encoder_tells_a_copy_from_another_voice(speaker_loss, speech_clip, espeak, tmp_path):
    other_path = espeak(tmp_path / "other.wav", "Hello there, my friend.", voice="en-us+f3", pitch=85, speed=190)
    other = load_wav(other_path, SynthesizerHParams())
    length = min(len(other), len(speech_clip))
    target = emphasised(speech_clip[:length])
    noisy = emphasised(speech_clip[:length] + np.random.default_rng(0).normal(0, 1e-3, length).astype(np.float32))
    with torch.no_grad():
        same = float(speaker_loss(target, target))
        copy = float(speaker_loss(target, noisy))
        different = float(speaker_loss(target, emphasised(other[:length])))
    assert abs(same) < 1e-5
    assert copy < 0.05 < different


def test_gradients_reach_the_output_and_never_the_encoder(speaker_loss, speech_clip):
    target = emphasised(speech_clip)
    output = (target * 0.5 + 0.01 * torch.randn_like(target)).requires_grad_(True)
    loss = speaker_loss(target, output)
    loss.backward()
    assert float(loss.detach()) > 0 and output.grad is not None and float(output.grad.abs().sum()) > 0
    assert all(parameter.grad is None and not parameter.requires_grad
               for parameter in speaker_loss.encoder.parameters())
    speaker_loss.train()
    assert not speaker_loss.encoder.training  # frozen in inference mode whatever the wrapper's mode


def test_silent_segments_are_left_out(speaker_loss, speech_clip):
    target = torch.cat([emphasised(speech_clip), torch.zeros(1, len(speech_clip))])  # speech, then silence
    output = torch.cat([emphasised(speech_clip), 0.1 * torch.randn(1, len(speech_clip))])
    assert abs(float(speaker_loss(target, output))) < 1e-5  # the silent target's noisy output is not scored
    assert float(speaker_loss(target[1:], output[1:])) == 0.0


def test_training_with_the_speaker_loss_resumes_and_names_a_missing_encoder(tmp_path, syn_dir, encoder_checkpoint,
                                                                             capsys):
    models = tmp_path / "models"
    base = ["run", str(syn_dir), "-m", str(models), *QUIET, "--sample_every", "0"]
    tiny = [*TINY, "w_speaker=50"]
    train_from_args([*base, *tiny, "-e", str(encoder_checkpoint), "--max_steps", "2"])
    checkpoint = load_checkpoint_file(models / "run" / "vocoder.pt", "vocoder")
    assert checkpoint["step"] == 2 and checkpoint["hparams"]["w_speaker"] == 50
    assert not any("lstm" in key for key in checkpoint["model_state"])  # the encoder is not part of the model
    model = train_from_args([*base, "-e", str(encoder_checkpoint), "--max_steps", "3"])  # hparams from the run
    assert int(model.step) == 3 and load_checkpoint_file(models / "run" / "vocoder.pt", "vocoder")["step"] == 3
    assert main([*base, "-e", str(tmp_path / "missing.pt"), "--max_steps", "4"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "missing.pt" in error and "\n" not in error
