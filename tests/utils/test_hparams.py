"""utils.hparams: dict/JSON round trips, tuple restoration, unknown keys refused."""

from __future__ import annotations

import dataclasses
import json

import pytest

from encoder.hparams import EncoderHParams
from synthesizer.hparams import SynthesizerHParams
from utils.hparams import HParams, HParamsError


@dataclasses.dataclass(frozen=True)
class Small(HParams):
    width: int = 4
    rate: float = 0.5
    factors: tuple[int, ...] = (5, 5, 8)
    schedule: tuple[tuple[int, float], ...] = ((2, 1e-3), (1, 1e-4))
    name: str = "x"


def test_to_dict_is_plain_builtin_types():
    values = Small().to_dict()
    assert values == {"width": 4, "rate": 0.5, "factors": [5, 5, 8], "schedule": [[2, 1e-3], [1, 1e-4]], "name": "x"}
    # JSON-able (and so safe for torch.load(weights_only=True)): no tuples, no dataclasses.
    assert json.loads(json.dumps(values)) == values


def test_from_dict_restores_tuples_including_nested():
    restored = Small.from_dict({"factors": [3, 3], "schedule": [[4, 0.1], [2, 0.01]]})
    assert restored.factors == (3, 3) and isinstance(restored.factors, tuple)
    assert restored.schedule == ((4, 0.1), (2, 0.01))
    assert all(isinstance(row, tuple) for row in restored.schedule)
    hash(restored)  # frozen dataclasses with tuples stay hashable (used as lru_cache keys)
    assert restored.width == 4 and restored.name == "x"  # absent keys keep their defaults


def test_from_dict_rejects_unknown_keys_and_names_them():
    with pytest.raises(HParamsError, match="unknown Small field.*(hop_sise|widht)") as error:
        Small.from_dict({"widht": 8, "hop_sise": 3})
    assert "hop_sise" in str(error.value) and "widht" in str(error.value)
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize("cls", [Small, EncoderHParams, SynthesizerHParams])
def test_round_trip_through_dict_and_json(cls, tmp_path):
    original = cls()
    assert cls.from_dict(original.to_dict()) == original
    path = tmp_path / "hparams.json"
    original.save_json(path)
    assert cls.load_json(path) == original
    assert json.loads(path.read_text(encoding="utf-8")) == original.to_dict()


def test_replace_validates_and_converts():
    hp = SynthesizerHParams().replace(tts_schedule=[[1, 1e-3, 10, 2]], tts_lstm_dims=64)
    assert hp.tts_schedule == ((1, 1e-3, 10, 2),) and hp.tts_lstm_dims == 64
    with pytest.raises(HParamsError, match="tts_lstm_dim"):
        SynthesizerHParams().replace(tts_lstm_dim=64)


def test_rtvc_defaults():
    encoder = EncoderHParams()
    assert (encoder.mel_n_fft, encoder.mel_hop_length, encoder.mel_n_channels) == (400, 160, 40)
    assert encoder.vad_window_samples == 480 and encoder.partials_n_frames == 160
    assert (encoder.hidden_size, encoder.num_layers, encoder.embedding_size) == (256, 3, 256)
    synthesizer = SynthesizerHParams()
    assert (synthesizer.n_fft, synthesizer.hop_size, synthesizer.win_size, synthesizer.num_mels) == (800, 200, 800, 80)
    assert (synthesizer.fmin, synthesizer.fmax, synthesizer.power, synthesizer.griffin_lim_iters) == (55, 7600, 1.5, 60)
