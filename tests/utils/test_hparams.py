"""utils.hparams: dict/JSON round trips, tuple restoration, unknown keys refused."""

from __future__ import annotations

import dataclasses
import json

import pytest

from encoder.hparams import EncoderHParams
from synthesizer.hparams import SynthesizerHParams
from utils.hparams import HParams, HParamsError
from vocoder.hparams import VocoderHParams


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
    assert json.loads(path.read_text(encoding="utf-8")) == original.to_dict()
    assert cls.from_dict(json.loads(path.read_text(encoding="utf-8"))) == original


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


# ----------------------------------------------------------------------------------------------
# Ranges (issue 17): every out-of-range value is refused where hyperparameters are parsed, with one
# sentence naming the key, the value and what is allowed.

MODEL_HPARAMS = [EncoderHParams, SynthesizerHParams, VocoderHParams]


@pytest.mark.parametrize("cls", MODEL_HPARAMS)
def test_every_non_boolean_field_has_a_range_rule(cls):
    # A new field without a rule would silently accept any value again.
    unchecked = [f.name for f in dataclasses.fields(cls) if not isinstance(f.default, bool) and f.name not in cls.RULES]
    assert unchecked == []
    assert set(cls.RULES) <= {f.name for f in dataclasses.fields(cls)}  # no rule for a field that is gone


@pytest.mark.parametrize("cls, key, value, allowed", [
    (EncoderHParams, "num_layers", 0, "between 1 and 256"),
    (EncoderHParams, "hidden_size", 0, "between 1 and 16384"),
    (EncoderHParams, "hidden_size", 10**7, "between 1 and 16384"),  # issue 18: sizes have upper bounds
    (EncoderHParams, "partials_n_frames", 0, "between 1 and 100000"),
    (EncoderHParams, "hidden_size", 1.5, "an integer"),
    (EncoderHParams, "learning_rate_init", float("inf"), "above 0 and finite"),
    (EncoderHParams, "learning_rate_init", float("nan"), "above 0 and finite"),
    (EncoderHParams, "partials_overlap", 1.0, "below 1"),
    (EncoderHParams, "vad_window_length_ms", 25, "one of 10, 20, 30"),
    (EncoderHParams, "speakers_per_batch", 1, "between 2 and 100000"),
    (SynthesizerHParams, "tts_dropout", 1.5, "at least 0 and below 1"),
    (SynthesizerHParams, "tts_dropout", -0.1, "at least 0 and below 1"),
    (SynthesizerHParams, "tts_feed_predictions", 2.0, "between 0 and 1"),
    (SynthesizerHParams, "tts_cleaner_names", ("nope_cleaners",), "english_cleaners"),
    (SynthesizerHParams, "tts_lstm_dims", -3, "between 1 and 16384"),
    (SynthesizerHParams, "n_fft", 2**20, "between 1 and 65536"),
    (SynthesizerHParams, "max_r", 1000, "between 1 and 256"),
    (SynthesizerHParams, "fmax", 9000, "at most half the sample rate (8000)"),
    (SynthesizerHParams, "win_size", 1024, "between 1 and n_fft (800)"),
    (SynthesizerHParams, "tts_schedule", ((2, 1e-3, 10, 4), (2, 1e-4, 10, 4)), "larger than the previous"),
    (SynthesizerHParams, "tts_schedule", ((2, float("inf"), 10, 4),), "learning rate must be positive and finite"),
    (SynthesizerHParams, "tts_schedule", ((30, 1e-3, 10, 4),), "r must be between 1 and 20"),
    (SynthesizerHParams, "tts_schedule", (), "empty"),
    (VocoderHParams, "voc_mode", "raw", "one of RAW, MOL"),
    (VocoderHParams, "voc_upsample_factors", (5, 5, 4), "multiply to 100"),
    (VocoderHParams, "voc_lr", float("nan"), "above 0 and finite"),
    (VocoderHParams, "voc_rnn_dims", 0, "between 1 and 16384"),
    (VocoderHParams, "voc_fc_dims", 10**6, "between 1 and 16384"),
    (VocoderHParams, "sample_rate", 10**9, "between 1000 and 384000"),
    (VocoderHParams, "bits", 40, "between 2 and 16"),
])
def test_out_of_range_values_are_refused_naming_key_value_and_range(cls, key, value, allowed):
    stored = list(value) if isinstance(value, tuple) else value  # as a JSON file gives it
    for build in (lambda: cls(**{key: value}), lambda: cls.from_dict({key: stored})):
        with pytest.raises(HParamsError) as error:
            build()
        message = str(error.value)
        assert message.startswith(f"{key} must be ") and allowed in message and "\n" not in message, message
        shown = [list(row) if isinstance(row, tuple) else row for row in value] if isinstance(value, tuple) else value
        assert message.endswith(f", not {shown!r}"), message


@pytest.mark.parametrize("cls", MODEL_HPARAMS)
def test_rtvc_defaults_and_small_models_are_valid(cls):
    cls().validate()  # RTVC's values (and so RTVC's files, which store none) stay valid
    small = {EncoderHParams: dict(hidden_size=4, embedding_size=4, num_layers=1),
             SynthesizerHParams: dict(tts_embed_dims=8, tts_lstm_dims=8, tts_num_highways=0, tts_dropout=0.0,
                                      tts_schedule=[[5, 1, 10, 1]], tts_cleaner_names=[]),
             VocoderHParams: dict(voc_mode="MOL", voc_rnn_dims=8, voc_pad=0, voc_upsample_factors=[200])}[cls]
    cls.from_dict(small)


def test_checkpoint_with_out_of_range_hparams_is_one_checkpoint_error(tmp_path):
    from utils.checkpoints import CheckpointError, read_hparams

    stored = {**EncoderHParams().to_dict(), "num_layers": 0}
    with pytest.raises(CheckpointError, match="cannot use: num_layers must be between 1 and 256, not 0"):
        read_hparams({"hparams": stored, "model_type": "encoder"}, EncoderHParams, tmp_path / "e.pt", "encoder")
    assert read_hparams({"model_state": {}}, EncoderHParams, tmp_path / "rtvc.pt", "encoder") == EncoderHParams()
