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
