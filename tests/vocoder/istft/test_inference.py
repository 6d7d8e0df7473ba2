"""ISTFTVocoder: the Vocoder protocol, checkpoint round trip, architecture check, streaming, bad weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.vocoder.istft.conftest import small_model, synth_mel
from utils.checkpoints import CheckpointError, NonFiniteOutputError
from vocoder.hparams import VocoderHParams
from vocoder.inference import Vocoder, WaveRNNVocoder
from vocoder.istft.inference import SYNTHESIZED_MEL_CONTRAST, ISTFTVocoder, checkpoint_architecture
from vocoder.model import build_wavernn


def test_follows_the_vocoder_protocol_and_length_contract():
    vocoder = ISTFTVocoder(small_model())
    assert isinstance(vocoder, Vocoder)
    assert vocoder.sample_rate == 16000 and vocoder.step == 0
    for frames in (1, 2, 37):
        wav = vocoder.vocode(synth_mel(frames))
        assert wav.dtype == np.float32 and wav.shape == ((frames - 1) * 200,)
    mel = synth_mel(20)
    assert np.array_equal(vocoder.vocode(mel), vocoder.vocode(mel, generator=torch.Generator().manual_seed(3)))


def test_progress_callback_is_called_before_and_after():
    calls = []
    ISTFTVocoder(small_model()).vocode(synth_mel(5), progress_callback=lambda *args: calls.append(args))
    assert [call[:3] for call in calls] == [(0, 1, 1), (1, 1, 1)]


def test_bad_mels_are_one_line_errors():
    vocoder = ISTFTVocoder(small_model())
    with pytest.raises(ValueError, match=r"shape \(80, T\)"):
        vocoder.vocode(np.zeros((5, 80), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        vocoder.vocode(np.full((80, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match="chunk_frames"):
        next(vocoder.vocode_stream(synth_mel(4), chunk_frames=0))


def test_checkpoint_round_trip_gives_identical_audio(tmp_path):
    model = small_model(seed=3)
    model.step.fill_(1234)
    path = tmp_path / "vocoder.pt"
    ISTFTVocoder(model).save(path)
    assert checkpoint_architecture(torch.load(path, weights_only=True)) == "istft"
    loaded = ISTFTVocoder.from_checkpoint(path)
    mel = synth_mel(30)
    assert loaded.step == 1234 and loaded.hparams == model.hparams
    assert np.array_equal(loaded.vocode(mel), ISTFTVocoder(model).vocode(mel))


def test_a_wavernn_file_is_refused_in_one_sentence(tmp_path):
    path = tmp_path / "wavernn.pt"
    WaveRNNVocoder(build_wavernn(VocoderHParams(voc_rnn_dims=16, voc_fc_dims=16, voc_compute_dims=8,
                                                voc_res_out_dims=8, voc_res_blocks=1))).save(path)
    with pytest.raises(CheckpointError, match="holds a wavernn vocoder, not an iSTFT vocoder") as error:
        ISTFTVocoder.from_checkpoint(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("chunk_frames", [1, 7, 40, 500])
@pytest.mark.parametrize("contrast", [1.0, SYNTHESIZED_MEL_CONTRAST])
def test_streaming_equals_one_shot(chunk_frames, contrast):
    vocoder = ISTFTVocoder(small_model(seed=1), contrast=contrast)
    mel = synth_mel(93, seed=2)
    whole = vocoder.vocode(mel)
    pieces = list(vocoder.vocode_stream(mel, chunk_frames=chunk_frames))
    assert all(len(piece) <= chunk_frames * 200 for piece in pieces)
    streamed = np.concatenate(pieces)
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() < 1e-4


def test_nan_weights_are_refused_with_the_checkpoint_name(tmp_path):
    model = small_model()
    with torch.no_grad():
        model.phase_real.weight.fill_(float("nan"))
    path = tmp_path / "broken.pt"
    ISTFTVocoder(model).save(path)
    vocoder = ISTFTVocoder.from_checkpoint(path)
    with pytest.raises(NonFiniteOutputError, match="broken.pt' produced NaN or infinite audio") as error:
        vocoder.vocode(synth_mel(10))
    assert "\n" not in str(error.value)
    with pytest.raises(NonFiniteOutputError):
        list(vocoder.vocode_stream(synth_mel(10)))


def test_float16_export_loads_and_sounds_the_same(tmp_path):
    from utils.export_model import export_checkpoint

    model = small_model(seed=4)
    full, slim = tmp_path / "full.pt", tmp_path / "slim.pt"
    ISTFTVocoder(model).save(full)
    export_checkpoint(full, slim)
    state = torch.load(slim, weights_only=True)
    assert state["architecture"] == "istft" and state["model_state"]["input_conv.weight"].dtype == torch.float16
    mel = synth_mel(25)
    a, b = ISTFTVocoder.from_checkpoint(full).vocode(mel), ISTFTVocoder.from_checkpoint(slim).vocode(mel)
    assert np.abs(a - b).max() < 0.05 * max(1e-3, float(np.abs(a).max()))


def test_amplitude_is_the_exponential_of_the_log_amplitude_head():
    model = small_model()
    mel = synth_mel(9)
    amplitude = ISTFTVocoder(model).amplitude(mel)  # contrast 1 by default
    assert amplitude.shape == (401, 9) and amplitude.dtype == np.float32
    with torch.no_grad():
        expected = torch.exp(model(torch.from_numpy(mel)[None])[0][0]).numpy()
    assert np.allclose(amplitude, expected, rtol=1e-5)


def test_contrast_scales_each_frame_about_its_mean_log_amplitude(speech_clip):
    from utils.mel import melspectrogram
    from synthesizer.hparams import SynthesizerHParams

    model = small_model(seed=3)
    mel = melspectrogram(speech_clip[:8000], SynthesizerHParams())  # real speech: far below the amplitude cap
    plain = np.log(ISTFTVocoder(model).amplitude(mel))  # (F, T)
    sharpened = np.log(ISTFTVocoder(model, contrast=SYNTHESIZED_MEL_CONTRAST).amplitude(mel))
    assert SYNTHESIZED_MEL_CONTRAST > 1.0
    assert np.allclose(sharpened.mean(axis=0), plain.mean(axis=0), atol=1e-4)  # each frame's level kept
    deviations = plain - plain.mean(axis=0)
    assert np.allclose(sharpened - sharpened.mean(axis=0), SYNTHESIZED_MEL_CONTRAST * deviations, atol=1e-3)


def test_contrast_one_is_the_network_alone_and_bad_contrasts_are_refused():
    model = small_model(seed=6)
    mel = synth_mel(20)
    with torch.no_grad():
        emphasised = model.waveform(torch.from_numpy(mel)[None])[0].numpy()
    plain = ISTFTVocoder(model).vocode(mel)
    sharpened = ISTFTVocoder(model, contrast=SYNTHESIZED_MEL_CONTRAST).vocode(mel)
    from vocoder.istft.spectral import deemphasis

    assert np.allclose(plain, deemphasis(emphasised, model.hparams.signal.preemphasis)[0], atol=1e-5)
    assert not np.allclose(plain, sharpened, atol=1e-4)
    vocoder = ISTFTVocoder(model)
    for bad in (0.0, -1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="contrast must be a positive number"):
            ISTFTVocoder(model, contrast=bad)
        with pytest.raises(ValueError, match="contrast must be a positive number"):
            vocoder.contrast = bad
    assert vocoder.contrast == 1.0
