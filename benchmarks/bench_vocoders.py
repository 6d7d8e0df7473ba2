"""Copy-synthesis benchmark of the vocoders on held-out real speech (ground-truth mels in, audio out).

For each held-out LibriSpeech speaker's recording (the speakers of :mod:`benchmarks.bench_quality`,
kept out of training), the synthesizer's mel is computed from the real audio and inverted by every
vocoder asked for. Each output is compared with its source:

* ``spectral_dB``: multi-resolution log-spectral distance (:func:`vocoder.istft.metrics.spectral_distance`),
  lower is better;
* ``ge2e_cos``: cosine between the GE2E embeddings (the default encoder) of the
  output and of the source, higher is better (1 = the encoder hears the same voice);
* ``wer``: Whisper-base word error rate against the LibriSpeech transcript, all errors over all words
  (the source's own WER is printed as the floor);
* ``rtf``: vocoding time over audio duration on this machine (``--threads``).

Vocoders: ``istft`` (``--istft`` checkpoint), ``griffinlim`` (:class:`vocoder.inference.GriffinLimVocoder`'s
tuned fast Griffin-Lim: power 1.2, momentum 0.99, 32 iterations), ``griffinlim_rtvc`` (RTVC's power
1.5 and 60 plain iterations), ``wavernn`` (``--wavernn`` checkpoint, fast generator), and
``istft_amplitude_gl``: the iSTFT vocoder's learned amplitude with fast Griffin-Lim phase (the
fallback if its phase head were worse).

Examples
--------
::

    python benchmarks/bench_vocoders.py --istft saved_models/shipped/istft_vocoder.pt
    python benchmarks/bench_vocoders.py --istft run/vocoder.pt --utterances 10 --vocoders istft,griffinlim --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

# A sibling script: Python puts the script's own folder, benchmarks/, first on sys.path.
from bench_quality import DEFAULT_LIBRISPEECH, HELD_OUT_SPEAKERS, cosine

REPO_ROOT = Path(__file__).resolve().parents[1]
VOCODERS = ("istft", "istft_amplitude_gl", "griffinlim", "griffinlim_rtvc", "wavernn")


def held_out_utterances(librispeech: Path, count: int, min_seconds: float = 0.0) -> list[tuple[str, Path, str]]:
    """``(speaker, flac, transcript)``: the first recording of at least ``min_seconds`` of each held-out
    speaker, for the first ``count`` speakers that have one (titles of two words say little about WER)."""
    import soundfile

    found = []
    for speaker in HELD_OUT_SPEAKERS:
        files = [path for path in sorted((librispeech / speaker).glob("*/*.flac"))
                 if soundfile.info(str(path)).duration >= min_seconds]
        if not files:
            continue
        transcripts = {}
        for listing in files[0].parent.glob("*.trans.txt"):
            for line in listing.read_text(encoding="utf-8").splitlines():
                key, _, text = line.partition(" ")
                transcripts[key] = text
        found.append((speaker, files[0], transcripts.get(files[0].stem, "")))
        if len(found) == count:
            break
    if not found:
        raise FileNotFoundError(f"No held-out LibriSpeech speaker found under '{librispeech}'.")
    return found


def griffin_lim_on_amplitude(amplitude: np.ndarray, seed: int = 0) -> np.ndarray:
    """Plain audio from a linear amplitude ``(n_fft // 2 + 1, T)`` of the pre-emphasised STFT, with the tuned
    fast Griffin-Lim's momentum and iterations (the amplitude is used as it is: no exponent)."""
    from utils.mel import inv_preemphasis
    from vocoder.griffin_lim import TUNED_GRIFFIN_LIM, griffin_lim
    from synthesizer.hparams import SynthesizerHParams

    hp = SynthesizerHParams()
    length = (amplitude.shape[1] - 1) * hp.hop_size
    wav = griffin_lim(amplitude.astype(np.float64), hp, TUNED_GRIFFIN_LIM.n_iters, np.random.default_rng(seed),
                      length, momentum=TUNED_GRIFFIN_LIM.momentum)
    return inv_preemphasis(wav, hp.preemphasis, hp.preemphasize).astype(np.float32)


def load_vocoders(args: argparse.Namespace) -> dict:
    import torch

    from utils.model_kinds import with_article
    from vocoder import registry

    def from_file(kind: str, name: str):  # noqa: ANN202
        path = getattr(args, kind)
        if path is None:
            raise ValueError(f"--{kind} must name {with_article(registry.kind_class(kind).title)} vocoder "
                             f"checkpoint to benchmark '{name}'.")
        vocoder = registry.kind_class(kind).from_checkpoint(path)
        vocoder.exact = False  # WaveRNN's fast path
        return vocoder

    def seeded(vocoder):  # noqa: ANN001, ANN202
        return lambda mel: vocoder.vocode(mel, generator=torch.Generator().manual_seed(0))

    builders = {
        "istft": lambda name: from_file("istft", name).vocode,
        "istft_amplitude_gl": lambda name: (lambda mel, a=from_file("istft", name):
                                            griffin_lim_on_amplitude(a.amplitude(mel))),
        "griffinlim": lambda name: seeded(registry.build("griffinlim")),
        "griffinlim_rtvc": lambda name: seeded(registry.build("griffinlim", exact=True)),
        "wavernn": lambda name: seeded(from_file("wavernn", name)),
    }
    unknown = [name for name in args.vocoders if name not in builders]
    if unknown:
        raise ValueError(f"Unknown vocoder '{unknown[0]}' (choose from {', '.join(VOCODERS)}).")
    return {name: builders[name](name) for name in args.vocoders}


def run(args: argparse.Namespace) -> dict:
    """Score every vocoder on every utterance; returns per-vocoder means and per-utterance rows."""
    import torch

    from encoder.inference import Encoder
    from synthesizer.audio import load_wav
    from utils.mel import melspectrogram
    from synthesizer.hparams import SynthesizerHParams
    from utils.default_models import resolve_model
    from vocoder.istft.metrics import spectral_distance

    if args.threads:
        torch.set_num_threads(args.threads)
    hp = SynthesizerHParams()
    encoder = Encoder.from_checkpoint(resolve_model("encoder", REPO_ROOT / "saved_models", args.encoder).path)
    transcriber = None
    if not args.no_asr:
        from utils.asr import Transcriber

        transcriber = Transcriber.load(threads=args.threads or 0)
    vocoders = load_vocoders(args)
    rows = []
    for speaker, path, text in held_out_utterances(args.librispeech, args.utterances, args.min_seconds):
        wav = load_wav(path, hp)
        if args.max_seconds:
            wav = wav[: int(args.max_seconds * hp.sample_rate)]
        mel = melspectrogram(wav, hp)  # (80, T): the synthesizer's ground-truth mel
        source = wav[: (mel.shape[1] - 1) * hp.hop_size]
        source_embedding = encoder.embed_utterance(encoder.preprocess(source))
        row = {"speaker": speaker, "file": path.name, "seconds": len(source) / hp.sample_rate, "text": text}
        if transcriber is not None and text and not args.max_seconds:
            from utils.asr import word_error_rate

            row["source_transcript"] = transcriber.transcribe(source)
            row["source_wer"] = word_error_rate(text, row["source_transcript"])
        for name, vocode in vocoders.items():
            start = time.perf_counter()
            out = vocode(mel)
            elapsed = time.perf_counter() - start
            scores = {
                "spectral_dB": spectral_distance(source, out),
                "ge2e_cos": cosine(source_embedding, encoder.embed_utterance(encoder.preprocess(out))),
                "rtf": elapsed / (len(source) / hp.sample_rate),
            }
            if "source_wer" in row:
                from utils.asr import word_error_rate

                transcript = transcriber.transcribe(out)
                scores["wer"] = word_error_rate(text, transcript)
                scores["transcript"] = transcript
            if args.save_dir:
                from utils.audio_io import save_audio

                save_audio(args.save_dir / f"{speaker}_{name}.wav", out, hp.sample_rate)
            row[name] = scores
            if args.verbose:
                shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float))
                print(f"{speaker} {name}: {shown}", file=sys.stderr, flush=True)
        rows.append(row)
    summary = {}
    for name in vocoders:
        keys = [k for k in ("spectral_dB", "ge2e_cos", "rtf") if k in rows[0][name]]
        summary[name] = {k: float(np.mean([row[name][k] for row in rows])) for k in keys}
        if "transcript" in rows[0][name]:
            from utils.asr import corpus_word_error_rate

            # All word errors over all words (as bench_quality): a two-word title cannot swing the mean.
            summary[name]["wer"] = corpus_word_error_rate([r["text"] for r in rows],
                                                          [r[name]["transcript"] for r in rows])
    if rows and "source_wer" in rows[0]:
        from utils.asr import corpus_word_error_rate

        summary["source"] = {"wer": corpus_word_error_rate([r["text"] for r in rows],
                                                           [r["source_transcript"] for r in rows])}
    return {"utterances": len(rows), "seconds": float(sum(r["seconds"] for r in rows)), "summary": summary,
            "rows": rows}


def print_table(result: dict) -> None:
    print(f"Copy-synthesis on {result['utterances']} held-out utterances ({result['seconds']:.0f} s of speech)")
    print(f"{'vocoder':<18} {'spectral dB':>11} {'GE2E cos':>9} {'WER %':>6} {'RTF':>7}")
    for name, scores in result["summary"].items():
        def show(key: str, fmt: str, scale: float = 1.0) -> str:
            width = int(fmt.split(".")[0])
            return format(scores[key] * scale, fmt) if key in scores else "-".rjust(width)

        print(f"{name:<18} {show('spectral_dB', '11.2f')} {show('ge2e_cos', '9.4f')} {show('wer', '6.1f', 100)} "
              f"{show('rtf', '7.3f')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--istft", type=Path, default=None, help="iSTFT vocoder checkpoint")
    parser.add_argument("--wavernn", type=Path, default=None, help="WaveRNN vocoder checkpoint")
    parser.add_argument("--vocoders", default="istft,griffinlim,griffinlim_rtvc",
                        help=f"comma-separated, from: {', '.join(VOCODERS)} (default: %(default)s)")
    parser.add_argument("-n", "--utterances", type=int, default=4, help="held-out utterances (one per speaker)")
    parser.add_argument("--min_seconds", type=float, default=3.0,
                        help="skip recordings shorter than this (chapter titles); default %(default)s")
    parser.add_argument("--max_seconds", type=float, default=None,
                        help="crop each recording (skips the WER, whose transcript covers the whole recording)")
    parser.add_argument("--librispeech", type=Path, default=DEFAULT_LIBRISPEECH)
    parser.add_argument("--encoder", type=Path, default=None,
                        help="GE2E checkpoint (default: the one the CLI would use, "
                             "see utils.default_models.resolve_model)")
    parser.add_argument("--no_asr", action="store_true", help="skip the Whisper WER")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch and the ASR")
    parser.add_argument("--save_dir", type=Path, default=None, help="also write every output here")
    parser.add_argument("--json", action="store_true", help="print one JSON object with every row")
    parser.add_argument("--verbose", action="store_true", help="print each score as it is computed")
    args = parser.parse_args(argv)
    args.vocoders = [v.strip() for v in args.vocoders.split(",") if v.strip()]
    if args.utterances < 1:
        print("error: --utterances must be at least 1.", file=sys.stderr)
        return 1
    if not args.librispeech.is_dir():
        print(f"error: the LibriSpeech folder '{args.librispeech}' does not exist (give --librispeech).",
              file=sys.stderr)
        return 1
    if args.save_dir:
        args.save_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = run(args)
    except (FileNotFoundError, RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1) if args.json else "", end="")
    if not args.json:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
