"""Time each inference stage on a fixed utterance with models of RTVC's exact sizes.

Prints, per device (CPU, and CUDA when present), the seconds each stage takes and its real-time factor
(RTF = compute seconds / seconds of audio; below 1 is faster than real time). Random weights are used:
the cost of these networks does not depend on the weight values. The synthesizer's stop token is
disabled so that it always decodes the full utterance length.

Examples
--------
    python benchmarks/bench_inference.py
    python benchmarks/bench_inference.py --seconds 5 --device cpu --json
    python benchmarks/bench_inference.py --skip_exact   # WaveRNN fast path only

WaveRNN is timed twice: ``wavernn_exact`` (RTVC's algorithm, bit-identical to it) and ``wavernn_fast``
(:mod:`vocoder.fast`); the text report also prints the speedup of the fast path.
``time_to_first_audio`` is what streaming (``demo_cli.py --play``) waits before the first sentence
starts playing: synthesizing a ``--first_sentence`` (2.5 s) sentence and fast-vocoding it until its
first piece is out (:meth:`vocoder.fast.FastWaveRNNGenerator.generate_stream`);
``playback_stall_seconds`` says how long playback, started then, would wait for a later piece (0: never). ``--models shipped``
times the sizes of the shipped offline models instead of RTVC's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoder.hparams import EncoderHParams  # noqa: E402
from encoder.inference import Encoder  # noqa: E402
from encoder.model import SpeakerEncoder  # noqa: E402
from synthesizer.hparams import SynthesizerHParams  # noqa: E402
from synthesizer.inference import SynthesisWarning, Synthesizer  # noqa: E402
from synthesizer.model import build_tacotron  # noqa: E402
from vocoder.hparams import VocoderHParams  # noqa: E402
from vocoder.inference import GriffinLimVocoder, WaveRNNVocoder  # noqa: E402
from vocoder.model import build_wavernn  # noqa: E402

# About 10 s of speech at a typical reading rate (~15 characters per second).
TEXT = ("The quick brown fox jumps over the lazy dog, while the five boxing wizards jump quickly "
        "and a wizard's job is to vex chumps quickly in fog.")


def timed(function: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` runs after one warm-up (first calls pay for lazy initialisation)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def model_sizes(which: str) -> tuple[SynthesizerHParams, int, VocoderHParams]:
    """Synthesizer hyperparameters, its r, and vocoder hyperparameters of RTVC's models or the shipped ones."""
    if which == "rtvc":
        return SynthesizerHParams(), 2, VocoderHParams()  # RTVC's published model decodes 2 frames per step
    from utils.checkpoints import load_checkpoint_file, read_hparams
    from utils.default_models import shipped_model_path

    found = {name: shipped_model_path(name) for name in ("synthesizer", "vocoder")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise FileNotFoundError(f"No shipped {' or '.join(missing)} in saved_models/shipped.")
    synthesizer = load_checkpoint_file(found["synthesizer"], "synthesizer")
    vocoder = load_checkpoint_file(found["vocoder"], "vocoder")
    return (read_hparams(synthesizer, SynthesizerHParams, found["synthesizer"], "synthesizer"),
            int(synthesizer["model_state"]["decoder.r"]),
            read_hparams(vocoder, VocoderHParams, found["vocoder"], "vocoder"))


def benchmark_device(
    device: torch.device, seconds: float, repeats: int, skip_wavernn: bool, skip_exact: bool = False,
    sizes: str = "rtvc", first_sentence_seconds: float = 2.5,
) -> dict[str, dict]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    results: dict[str, dict] = {}

    encoder_hparams = EncoderHParams()
    encoder = Encoder(SpeakerEncoder(encoder_hparams), encoder_hparams, device)
    # Speech-like test signal: noise with a syllable-rate envelope.
    n_samples = int(seconds * encoder_hparams.sample_rate)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * np.arange(n_samples) / encoder_hparams.sample_rate)
    wav = (0.1 * envelope * rng.standard_normal(n_samples)).astype(np.float32)
    elapsed = timed(lambda: encoder.embed_utterance(wav), repeats)
    results["encoder"] = {"seconds": elapsed, "audio_seconds": seconds}

    synth_hparams, r, vocoder_hparams = model_sizes(sizes)
    tacotron = build_tacotron(synth_hparams)
    tacotron.r = r
    with torch.no_grad():
        tacotron.decoder.stop_proj.bias.fill_(-1e4)  # never stop: decode exactly max_steps frames
    synthesizer = Synthesizer(tacotron.to(device), synth_hparams)
    n_frames = int(round(seconds * synth_hparams.sample_rate / synth_hparams.hop_size))
    embedding = rng.random(encoder_hparams.embedding_size).astype(np.float32)
    embedding /= np.linalg.norm(embedding)
    mel_holder: dict[str, np.ndarray] = {}

    def synthesize() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SynthesisWarning)  # never stopping is the point here
            mel_holder["mel"] = synthesizer.synthesize([TEXT], embedding, max_steps=n_frames).mels[0]

    elapsed = timed(synthesize, repeats)
    results["synthesizer"] = {"seconds": elapsed, "audio_seconds": n_frames * synth_hparams.hop_size / 16000}

    # The vocoders get a mel of exactly the benchmark length (the synthesizer may trim quiet frames).
    mel = np.clip(rng.normal(-1.5, 1.0, (synth_hparams.num_mels, n_frames + 1)), -4, 4).astype(np.float32)
    audio_seconds = n_frames * synth_hparams.hop_size / synth_hparams.sample_rate
    if not skip_wavernn:
        wavernn = WaveRNNVocoder(build_wavernn(vocoder_hparams).to(device))
        if not skip_exact:
            # RTVC's algorithm (target 8000, overlap 800), sample-for-sample identical to RTVC
            elapsed = timed(lambda: wavernn.vocode(mel), max(1, repeats - 1))
            results["wavernn_exact"] = {"seconds": elapsed, "audio_seconds": audio_seconds}
        # vocoder.fast: short folds, precomputed conditioning, bf16 matrices where supported
        elapsed = timed(lambda: wavernn.vocode(mel, fast=True), repeats)
        results["wavernn_fast"] = {"seconds": elapsed, "audio_seconds": audio_seconds}
    griffin_lim = GriffinLimVocoder(synth_hparams)
    elapsed = timed(lambda: griffin_lim.vocode(mel), repeats)
    results["griffinlim"] = {"seconds": elapsed, "audio_seconds": audio_seconds}

    if not skip_wavernn and first_sentence_seconds > 0:
        # Streaming (--play): the first sentence is synthesized on its own, then vocoded in pieces
        # (vocoder.fast.generate_stream); playback starts with the first piece.
        first_frames = int(round(first_sentence_seconds * synth_hparams.sample_rate / synth_hparams.hop_size))
        first_mel = mel[:, : first_frames + 1]
        sample_rate = synth_hparams.sample_rate
        stalls: list[float] = []

        def first_audio() -> float:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SynthesisWarning)
                synthesizer.synthesize([TEXT[:40]], embedding, max_steps=first_frames)
            first, played, stall = None, 0, 0.0
            for piece in wavernn.vocode_stream(first_mel):
                now = time.perf_counter() - start
                first = now if first is None else first
                # how late this piece is for a playback that started with the first one
                stall = max(stall, now - (first + played / sample_rate))
                played += len(piece)
            stalls.append(stall)
            return first if first is not None else time.perf_counter() - start

        elapsed = min(first_audio() for _ in range(repeats + 1))  # the first run pays for lazy set-up
        results["time_to_first_audio"] = {"seconds": elapsed, "audio_seconds": first_frames * synth_hparams.hop_size
                                          / sample_rate, "playback_stall_seconds": min(stalls[1:])}

    for figures in results.values():
        figures["rtf"] = figures["seconds"] / figures["audio_seconds"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the benchmark utterance")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto = CPU, plus CUDA when available")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per stage (best is kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--skip_wavernn", action="store_true", help="skip both WaveRNN stages")
    parser.add_argument("--skip_exact", action="store_true",
                        help="skip the slow exact (RTVC) WaveRNN stage, keep the fast one")
    parser.add_argument("--models", choices=("rtvc", "shipped"), default="rtvc",
                        help="model sizes: RTVC's published models, or the shipped offline ones (saved_models/shipped)")
    parser.add_argument("--first_sentence", type=float, default=2.5,
                        help="seconds of the first sentence when timing the time to first audio (0: skip)")
    parser.add_argument("--json", action="store_true", help="print one JSON object: device → stage → figures")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = [torch.device("cpu")] if args.device in ("auto", "cpu") else []
    if args.device in ("auto", "cuda"):
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        elif args.device == "cuda":
            print("error: CUDA is not available on this machine.", file=sys.stderr)
            return 1

    try:
        report = {device.type: benchmark_device(device, args.seconds, args.repeats, args.skip_wavernn,
                                                args.skip_exact, args.models, args.first_sentence)
                  for device in devices}
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'RTVC' if args.models == 'rtvc' else 'Shipped'} model sizes; fixed utterance: {args.seconds:g} s of audio; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'device':<6} {'stage':<20} {'seconds':>8} {'audio s':>8} {'RTF':>7}")
    for device, stages in report.items():
        for stage, figures in stages.items():
            print(f"{device:<6} {stage:<20} {figures['seconds']:8.3f} {figures['audio_seconds']:8.2f} "
                  f"{figures['rtf']:7.3f}")
        if "time_to_first_audio" in stages:
            print(f"{device:<6} streaming playback would wait {stages['time_to_first_audio']['playback_stall_seconds']:.3f} s "
                  f"for a later piece of the first sentence (0: never)")
        if "wavernn_exact" in stages and "wavernn_fast" in stages:
            ratio = stages["wavernn_exact"]["seconds"] / stages["wavernn_fast"]["seconds"]
            print(f"{device:<6} WaveRNN fast path speedup over exact: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
