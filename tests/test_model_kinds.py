"""The seam for model kinds: every kind implements its family's protocol (checked on signatures), the
registries build the kind a file holds after reading it once, and kinds are imported only when used."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from synthesizer import registry as synthesizers
from synthesizer.base import MelSynthesizer, SynthesisWarning
from tests.conftest import REPO_ROOT
from utils.checkpoints import CheckpointError
from vocoder import registry as vocoders
from vocoder.base import MelVocoder


def protocol_methods(protocol: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(protocol).items()
            if inspect.isfunction(member) and not name.startswith("_")}


def assert_implements(cls: type, protocol: type) -> None:
    """Every method of ``protocol`` exists on ``cls`` and accepts each of its parameters the same way."""
    for name, wanted in protocol_methods(protocol).items():
        method = getattr(cls, name, None)
        assert callable(method), f"{cls.__name__} has no method {name}"
        actual = inspect.signature(method).parameters
        for parameter in wanted.parameters.values():
            assert parameter.name in actual, f"{cls.__name__}.{name} lacks {parameter.name}"
            found = actual[parameter.name]
            assert found.kind == parameter.kind, f"{cls.__name__}.{name}({parameter.name}) is {found.kind}"
            assert found.default == parameter.default, f"{cls.__name__}.{name}({parameter.name}) default"
        extra = [p for p in actual.values() if p.name not in wanted.parameters
                 and p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        assert not extra, f"{cls.__name__}.{name} requires {[p.name for p in extra]} beyond the protocol"


@pytest.mark.parametrize("kind", vocoders.names())
def test_every_vocoder_kind_implements_the_protocol(kind):
    cls = vocoders.kind_class(kind)
    assert_implements(cls, MelVocoder)
    assert 0.0 < cls.time_share < 1.0 and cls.kind == kind and cls.title


@pytest.mark.parametrize("kind", synthesizers.SYNTHESIZERS.names())
def test_every_synthesizer_kind_implements_the_protocol(kind):
    cls = synthesizers.kind_class(kind)
    assert_implements(cls, MelSynthesizer)
    assert cls.architecture == kind and isinstance(cls.reports_steps, bool) and isinstance(cls.converts, bool)


def test_the_protocols_are_what_the_pipeline_calls():
    assert {"vocode", "vocode_batch", "vocode_stream", "use_synthesized_mels"} <= set(protocol_methods(MelVocoder))
    assert {"synthesize", "gta_source"} <= set(protocol_methods(MelSynthesizer))


def test_unknown_kinds_and_other_models_files_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown vocoder 'melgan': choose 'wavernn', 'istft', 'griffinlim'"):
        vocoders.kind_class("melgan")
    with pytest.raises(CheckpointError, match="is a synthesizer checkpoint, not a vocoder checkpoint"):
        vocoders.VOCODERS.checkpoint_kind({"model_type": "synthesizer"}, "x.pt")
    with pytest.raises(CheckpointError, match="unknown architecture 'griffinlim'"):  # built by name, never from files
        vocoders.VOCODERS.checkpoint_kind({"architecture": "griffinlim"}, "x.pt")
    with pytest.raises(ValueError, match="needs a checkpoint"):
        vocoders.build("istft")


def test_a_vocoder_file_is_read_once(tmp_path, monkeypatch):
    from vocoder.istft.hparams import ISTFTHParams
    from vocoder.istft.inference import SYNTHESIZED_MEL_CONTRAST, ISTFTVocoder
    from vocoder.istft.model import build_istft_vocoder

    path = tmp_path / "vocoder.pt"
    ISTFTVocoder(build_istft_vocoder(ISTFTHParams(channels=32, num_blocks=2))).save(path)
    reads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: reads.append(args) or real_load(*args, **kwargs))
    vocoder = vocoders.load(path, synthesized_mels=True)
    assert len(reads) == 1
    assert vocoder.kind == "istft" and vocoder.streams and vocoder.contrast == SYNTHESIZED_MEL_CONTRAST


def test_griffin_lim_batches_seed_each_mel_as_it_did_alone():
    vocoder = vocoders.build("griffinlim")
    mels = [np.full((80, 5), -4.0, np.float32), np.zeros((80, 7), np.float32)]
    batch = vocoder.vocode_batch(mels, seed=3)
    alone = [vocoder.vocode(mel, generator=torch.Generator().manual_seed(3 + i)) for i, mel in enumerate(mels)]
    for a, b in zip(batch, alone):
        np.testing.assert_array_equal(a, b)


def test_the_duration_synthesizer_says_which_options_it_ignores():
    from synthesizer.duration.hparams import DurationHParams
    from synthesizer.duration.inference import DurationSynthesizer

    synthesizer = DurationSynthesizer.untrained(DurationHParams(encoder_channels=16, duration_channels=16,
                                                                decoder_channels=16, decoder_layers=1))
    with pytest.raises(ValueError, match="exact_rtvc_batching"):
        synthesizer.synthesize(["Hi."], np.ones(256, np.float32), exact_rtvc_batching=True)
    with pytest.raises(ValueError, match="no decoder steps"):
        synthesizer.synthesize(["Hi."], np.ones(256, np.float32), step_callback=print)
    with pytest.warns(SynthesisWarning, match="batch_size has no effect"), pytest.raises(ValueError, match="speaker"):
        synthesizer.synthesize(["Hi."], np.ones(3, np.float32), batch_size=4)  # stops after the warning


def test_importing_the_pipeline_imports_no_model_kind():
    heavy = ["vocoder.fast", "vocoder.inference", "vocoder.istft.inference", "synthesizer.model",
             "synthesizer.inference", "synthesizer.duration.inference", "scipy.signal", "scipy.ndimage"]
    code = f"import sys, pipeline; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
