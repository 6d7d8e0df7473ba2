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
``playback_stall_seconds`` says how long playback, started then, would wait for a later piece (0: never).

``--models shipped`` times the shipped offline models themselves (saved_models/shipped, their real
weights and architectures, e.g. the duration synthesizer and the iSTFT vocoder): the synthesizer
speaks the benchmark text at its own length, so ``--seconds`` does not apply to it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from typing import Callable

import numpy as np
import torch

from encoder.hparams import EncoderHParams
from encoder.inference import Encoder
from encoder.model import SpeakerEncoder
from synthesizer.hparams import SynthesizerHParams
from synthesizer.inference import SynthesisWarning, Synthesizer
from synthesizer.model import build_tacotron
from utils.checkpoints import CheckpointError
from vocoder.hparams import VocoderHParams
from vocoder.inference import GriffinLimVocoder, WaveRNNVocoder
from vocoder.model import build_wavernn

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


def benchmark_shipped(device: torch.device, repeats: int, first_sentence_seconds: float = 2.5) -> dict[str, dict]:
    """Time the shipped offline models themselves (their real weights, whatever their architectures).

    The synthesizer speaks :data:`TEXT` at its own pace, so ``audio_seconds`` is the length it chose
    (``--seconds`` does not apply). ``time_to_first_audio`` synthesizes the first clause and streams
    the vocoder until its first piece is out, as ``demo_cli.py --play`` does.
    """
    from synthesizer import registry as synthesizers
    from utils.default_models import shipped_model_path
    from vocoder import registry as vocoders

    found = {name: shipped_model_path(name) for name in ("encoder", "synthesizer", "vocoder")}
    missing = [name for name in ("synthesizer", "vocoder") if found[name] is None]
    if missing:
        raise FileNotFoundError(f"No shipped {' or '.join(missing)} in saved_models/shipped.")
    rng = np.random.default_rng(0)
    results: dict[str, dict] = {}
    encoder_hparams = EncoderHParams()
    encoder = Encoder(SpeakerEncoder(encoder_hparams), encoder_hparams, device)
    n_samples = int(5.0 * encoder_hparams.sample_rate)
    wav = (0.1 * rng.standard_normal(n_samples)).astype(np.float32)
    results["encoder"] = {"seconds": timed(lambda: encoder.embed_utterance(wav), repeats), "audio_seconds": 5.0}

    synthesizer = synthesizers.load(found["synthesizer"], device)
    vocoder = vocoders.load(found["vocoder"], device, exact=False)
    hop, sample_rate = synthesizer.hparams.hop_size, synthesizer.sample_rate
    embedding = rng.random(encoder_hparams.embedding_size).astype(np.float32)
    embedding /= np.linalg.norm(embedding)
    mel_holder: dict[str, np.ndarray] = {}

    def synthesize() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SynthesisWarning)
            mel_holder["mel"] = synthesizer.synthesize([TEXT], embedding).mels[0]

    results["synthesizer"] = {"seconds": timed(synthesize, repeats)}
    mel = mel_holder["mel"]
    audio_seconds = (mel.shape[1] - 1) * hop / sample_rate
    results["synthesizer"]["audio_seconds"] = audio_seconds
    vocoder_stage = {"wavernn": "wavernn_fast"}.get(vocoder.kind, vocoder.kind)  # WaveRNN's figure names its path
    results[vocoder_stage] = {"seconds": timed(lambda: vocoder.vocode(mel), repeats),
                              "audio_seconds": audio_seconds}
    griffin_lim = GriffinLimVocoder(synthesizer.hparams)
    results["griffinlim"] = {"seconds": timed(lambda: griffin_lim.vocode(mel), repeats), "audio_seconds": audio_seconds}

    if first_sentence_seconds > 0:
        first_text = TEXT.split(",")[0]

        def first_audio() -> tuple[float, float]:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SynthesisWarning)
                first_mel = synthesizer.synthesize([first_text], embedding).mels[0]
            first = None
            for _ in vocoder.vocode_stream(first_mel):
                first = time.perf_counter() - start
                break
            first_seconds = first if first is not None else time.perf_counter() - start
            return first_seconds, (first_mel.shape[1] - 1) * hop / sample_rate

        runs = [first_audio() for _ in range(repeats + 1)][1:]  # the first run pays for lazy set-up
        results["time_to_first_audio"] = {"seconds": min(run[0] for run in runs), "audio_seconds": runs[0][1],
                                          "playback_stall_seconds": 0.0}
    for figures in results.values():
        figures["rtf"] = figures["seconds"] / figures["audio_seconds"]
    return results


def benchmark_device(
    device: torch.device, seconds: float, repeats: int, skip_wavernn: bool, skip_exact: bool = False,
    first_sentence_seconds: float = 2.5,
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

    synth_hparams, vocoder_hparams = SynthesizerHParams(), VocoderHParams()
    tacotron = build_tacotron(synth_hparams)
    tacotron.r = 2  # RTVC's published model decodes 2 frames per step
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
    audio_seconds = n_frames * synth_hparams.hop_size / synth_hparams.sample_rate
    results["synthesizer"] = {"seconds": elapsed, "audio_seconds": audio_seconds}

    # The vocoders get a mel of exactly the benchmark length (the synthesizer may trim quiet frames).
    mel = np.clip(rng.normal(-1.5, 1.0, (synth_hparams.num_mels, n_frames + 1)), -4, 4).astype(np.float32)
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
                        help="RTVC's published model sizes (random weights), or the shipped offline models themselves")
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
                                                args.skip_exact, args.first_sentence)
                  if args.models == "rtvc" else benchmark_shipped(device, args.repeats, args.first_sentence)
                  for device in devices}
    except (FileNotFoundError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    what = f"RTVC model sizes; fixed utterance: {args.seconds:g} s of audio" if args.models == "rtvc" \
        else "Shipped models (their own weights); the synthesizer picks the utterance length"
    print(f"{what}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'device':<6} {'stage':<20} {'seconds':>8} {'audio s':>8} {'RTF':>7}")
    for device, stages in report.items():
        for stage, figures in stages.items():
            print(f"{device:<6} {stage:<20} {figures['seconds']:8.3f} {figures['audio_seconds']:8.2f} "
                  f"{figures['rtf']:7.3f}")
        if "time_to_first_audio" in stages:
            stall = stages["time_to_first_audio"]["playback_stall_seconds"]
            print(f"{device:<6} streaming playback would wait {stall:.3f} s "
                  f"for a later piece of the first sentence (0: never)")
        if "wavernn_exact" in stages and "wavernn_fast" in stages:
            ratio = stages["wavernn_exact"]["seconds"] / stages["wavernn_fast"]["seconds"]
            print(f"{device:<6} WaveRNN fast path speedup over exact: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
