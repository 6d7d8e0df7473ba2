"""Training speed of the three models at RTVC's sizes and batch shapes: steps/s and samples/s, model
only, on random batches (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable

import torch

from encoder.hparams import EncoderHParams
from encoder.model import build_speaker_encoder
from encoder.train import GE2ELossModule, apply_gradient_rules
from synthesizer.data import SynthesizerBatch
from synthesizer.hparams import SynthesizerHParams
from synthesizer.model import build_tacotron
from synthesizer.train import tacotron_loss
from vocoder.hparams import VocoderHParams
from vocoder.model import build_wavernn
from vocoder.train import rtvc_loss

MODELS = ("encoder", "synthesizer", "vocoder")


class StepRunner:
    """One model's training step, built once; ``step()`` runs forward, backward and the update."""

    def __init__(self, step: Callable[[], None], items_per_step: int, item: str) -> None:
        self.step, self.items_per_step, self.item = step, items_per_step, item


def _amp_step(loss_fn: Callable[[], torch.Tensor], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
              scaler: torch.amp.GradScaler, device: torch.device, clip: Callable[[], None]) -> None:
    with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
        loss = loss_fn()
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    clip()
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def encoder_runner(device: torch.device, scale: float, amp: bool) -> StepRunner:
    hparams = EncoderHParams()
    n_speakers = max(2, round(hparams.speakers_per_batch * scale))
    n_utterances = hparams.utterances_per_speaker
    model = build_speaker_encoder(hparams).to(device)
    wrapper = GE2ELossModule(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=hparams.learning_rate_init)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    frames = torch.rand(n_speakers * n_utterances, hparams.partials_n_frames, hparams.mel_n_channels, device=device)

    def loss() -> torch.Tensor:
        return wrapper(frames, n_speakers, n_utterances)[0]

    def step() -> None:
        _amp_step(loss, model, optimizer, scaler, device, lambda: apply_gradient_rules(model))

    return StepRunner(step, n_speakers * n_utterances, "utterances")


def synthesizer_runner(device: torch.device, scale: float, amp: bool, mel_frames: int) -> StepRunner:
    hparams = SynthesizerHParams()
    r, _, _, batch_size = hparams.tts_schedule[0]
    batch_size = max(1, round(batch_size * scale))
    model = build_tacotron(hparams).to(device).train()
    model.r = r
    optimizer = torch.optim.Adam(model.parameters())
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    n_chars = max(10, mel_frames // 5)  # LibriSpeech speaks about 5 mel frames (62 ms) per character
    length = -(-(mel_frames + 1) // r) * r
    frame_mask = torch.zeros(batch_size, length, device=device)
    frame_mask[:, :mel_frames] = 1
    stop_targets = 1 - frame_mask
    stop_targets[:, mel_frames - 1] = 1
    batch = SynthesizerBatch(
        texts=torch.randint(1, 60, (batch_size, n_chars), device=device),
        text_lengths=torch.full((batch_size,), n_chars, device=device),
        mels=torch.rand(batch_size, hparams.num_mels, length, device=device) * 8 - 4,
        mel_lengths=torch.full((batch_size,), mel_frames, device=device),
        frame_mask=frame_mask,
        stop_targets=stop_targets,
        embeddings=torch.nn.functional.normalize(torch.rand(batch_size, hparams.speaker_embedding_size,
                                                            device=device), dim=1),
        indices=torch.arange(batch_size, device=device),
    )

    def loss() -> torch.Tensor:
        output = model(batch.texts, batch.mels, batch.embeddings)
        return tacotron_loss(output, batch, r).total

    def step() -> None:
        _amp_step(loss, model, optimizer, scaler, device,
                  lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), hparams.tts_clip_grad_norm))

    return StepRunner(step, batch_size * mel_frames, "mel frames")


def vocoder_runner(device: torch.device, scale: float, amp: bool) -> StepRunner:
    hparams = VocoderHParams()
    batch_size = max(1, round(hparams.voc_batch_size * scale))
    model = build_wavernn(hparams).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=hparams.voc_lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    frames = hparams.voc_seq_len // hparams.hop_length + 2 * hparams.voc_pad
    mels = torch.rand(batch_size, hparams.num_mels, frames, device=device)
    x = torch.rand(batch_size, hparams.voc_seq_len, device=device) * 2 - 1
    y = torch.randint(0, hparams.n_classes, (batch_size, hparams.voc_seq_len), device=device)

    def loss() -> torch.Tensor:
        return rtvc_loss(model(x, mels), y, hparams)

    def step() -> None:
        _amp_step(loss, model, optimizer, scaler, device, lambda: None)

    return StepRunner(step, batch_size * hparams.voc_seq_len, "samples")


def time_steps(runner: StepRunner, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per step, after ``warmup`` untimed steps (cuDNN autotuning, allocator growth)."""
    for _ in range(warmup):
        runner.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        runner.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def benchmark(models: list[str], device: torch.device, steps: int, warmup: int, scale: float,
              mel_frames: int, amp: bool) -> dict[str, dict[str, float | str]]:
    """``{model: {"seconds_per_step", "steps_per_second", "items_per_second", "item", "batch_scale"}}``."""
    builders = {
        "encoder": lambda: encoder_runner(device, scale, amp),
        "synthesizer": lambda: synthesizer_runner(device, scale, amp, mel_frames),
        "vocoder": lambda: vocoder_runner(device, scale, amp),
    }
    report: dict[str, dict[str, float | str]] = {}
    for name in models:
        torch.manual_seed(0)
        runner = builders[name]()
        seconds = time_steps(runner, steps, warmup, device)
        report[name] = {
            "seconds_per_step": seconds,
            "steps_per_second": 1.0 / seconds,
            "items_per_second": runner.items_per_step / seconds,
            "item": runner.item,
            "batch_scale": scale,
        }
        del runner
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of %(default)s")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--batch_scale", type=float, default=1.0,
                        help="fraction of RTVC's batch sizes, for a quick look on a CPU (default: 1)")
    parser.add_argument("--mel_frames", type=int, default=400,
                        help="synthesizer utterance length in mel frames (default: %(default)s, 5 s)")
    parser.add_argument("--no_amp", action="store_true", help="float32 on CUDA too")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown or not models:
        print(f"error: unknown model(s) {', '.join(unknown) or '(none)'}; choose among {', '.join(MODELS)}.",
              file=sys.stderr)
        return 1
    if args.steps < 1 or args.warmup < 0 or not 0 < args.batch_scale <= 4 or args.mel_frames < 10:
        print("error: need --steps >= 1, --warmup >= 0, 0 < --batch_scale <= 4 and --mel_frames >= 10.",
              file=sys.stderr)
        return 1
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda was asked for, but CUDA is not available.", file=sys.stderr)
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    amp = device.type == "cuda" and not args.no_amp
    report = benchmark(models, device, args.steps, args.warmup, args.batch_scale, args.mel_frames, amp)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    if args.json:
        print(json.dumps({"device": name, "amp": amp, "models": report}, indent=2))
        return 0
    print(f"Training speed on {name} ({'mixed precision' if amp else 'float32'}, batch scale {args.batch_scale:g})")
    print(f"{'model':<12} {'s/step':>8} {'steps/s':>8}  throughput")
    for model_name, row in report.items():
        print(f"{model_name:<12} {row['seconds_per_step']:>8.3f} {row['steps_per_second']:>8.2f}  "
              f"{row['items_per_second']:,.0f} {row['item']}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
