"""Real checkpoint files for the pipeline and CLI tests: random weights in RTVC's exact file format.

RTVC's published files hold ``{"model_state", "optimizer_state"}`` with default sizes and no
hyperparameters; these are made the same way (full-size models, a real Adam state after one step),
so loading them exercises exactly the code path of the published weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from synthesizer.hparams import SynthesizerHParams
from synthesizer.model import build_tacotron
from vocoder.hparams import VocoderHParams
from vocoder.model import build_wavernn


def _adam_state(model: torch.nn.Module) -> dict:
    """Optimizer state after one real Adam step with zero gradients (weights stay as they are).

    Like RTVC, Adam gets *all* parameters, including WaveRNN's non-trainable ``step`` (quirk 20), so
    the parameter groups have RTVC's sizes and the state resumes in our trainers.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return optimizer.state_dict()


def write_rtvc_synthesizer(path: Path, seed: int = 0, stop_bias: float = 20.0) -> Path:
    """Full-size random Tacotron with r = 2 in RTVC's format.

    ``stop_bias`` sets the stop-token bias: a large positive value makes the random model stop at the
    earliest frame RTVC allows (short outputs, under 21 frames), a very negative one never stops.
    """
    torch.manual_seed(seed)
    model = build_tacotron(SynthesizerHParams())
    model.r = 2
    with torch.no_grad():
        model.decoder.stop_proj.bias.fill_(stop_bias)
    torch.save({"model_state": model.state_dict(), "optimizer_state": _adam_state(model)}, path)
    return path


def write_rtvc_vocoder(path: Path, seed: int = 0) -> Path:
    """Full-size random WaveRNN (RAW, 9 bits) in RTVC's format."""
    torch.manual_seed(seed)
    model = build_wavernn(VocoderHParams())
    torch.save({"model_state": model.state_dict(), "optimizer_state": _adam_state(model)}, path)
    return path


def make_models_dir(root: Path, encoder_checkpoint: Path) -> Path:
    """``root/default/{encoder,synthesizer,vocoder}.pt``: the real encoder, random synthesizer/vocoder."""
    default = root / "default"
    default.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(encoder_checkpoint, default / "encoder.pt")
    write_rtvc_synthesizer(default / "synthesizer.pt")
    write_rtvc_vocoder(default / "vocoder.pt")
    return root


def write_duration_synthesizer(path: Path, seed: int = 0, log_duration_bias: float = 1.5) -> Path:
    """Small random duration synthesizer in our format (its symbols and espeak-ng version stored).

    ``log_duration_bias`` sets every predicted duration to about ``e^bias − 1`` frames, so random
    weights still give a mel of a sensible length.
    """
    from synthesizer.duration.hparams import DurationHParams
    from synthesizer.duration.inference import DurationSynthesizer
    from synthesizer.duration.model import DurationSynthesizerModel
    from synthesizer.duration.phonemes import SymbolTable

    torch.manual_seed(seed)
    table = SymbolTable.default()
    hparams = DurationHParams(encoder_channels=32, duration_channels=16, decoder_channels=32, decoder_layers=2,
                              encoder_layers=2)
    model = DurationSynthesizerModel(hparams, len(table))
    with torch.no_grad():
        model.duration_head.bias.fill_(log_duration_bias)
    model.step.fill_(1)
    DurationSynthesizer(model, table).save(path)
    return path


def write_istft_vocoder(path: Path, seed: int = 0) -> Path:
    """Small random iSTFT vocoder in our format."""
    from vocoder.istft.hparams import ISTFTHParams
    from vocoder.istft.inference import ISTFTVocoder
    from vocoder.istft.model import build_istft_vocoder

    torch.manual_seed(seed)
    model = build_istft_vocoder(ISTFTHParams(channels=32, num_blocks=2))
    ISTFTVocoder(model).save(path)
    return path
