"""Measure what ``--pitch_shift`` and ``--energy`` do to cloned speech of held-out speakers: F0, level and
WER, clone by clone (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_quality import (DEFAULT_LIBRISPEECH, EVALUATION_SENTENCES, HELD_OUT_SPEAKERS, REPO_ROOT,  # noqa: E402
                           find_utterance, run_and_print)

#: (label, semitones, energy factor)
SETTINGS = (("as predicted", 0.0, 1.0), ("pitch +4", 4.0, 1.0), ("pitch -4", -4.0, 1.0),
            ("energy 0.5", 0.0, 0.5), ("energy 2", 0.0, 2.0))


def median_f0(wav: np.ndarray, sample_rate: int) -> float:
    from synthesizer.duration.pitch import estimate_f0

    f0 = estimate_f0(wav, sample_rate, 200, 1 + len(wav) // 200)
    return float(np.median(f0[f0 > 0])) if (f0 > 0).any() else float("nan")


def loudness_db(wav: np.ndarray, frame: int = 400) -> float:
    frames = wav[: len(wav) // frame * frame].reshape(-1, frame)
    level = 10 * np.log10(np.maximum((frames**2).mean(1), 1e-12))
    return float(10 * np.log10(np.mean(10 ** (level[level > level.max() - 30] / 10))))


def run(args: argparse.Namespace) -> dict:
    import torch

    from pipeline import ClonePipeline, load_reference, resolve_models
    from utils.asr import Transcriber, word_error_rate

    warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = resolve_models(args.models_dir, synthesizer=args.syn_model_fpath, vocoder=args.voc_model_fpath,
                           vocoder_name=args.vocoder).paths
    pipeline = ClonePipeline(paths, torch.device("cpu"))
    transcriber = Transcriber.load(threads=args.threads or 0)
    rows = []
    for index, speaker in enumerate(args.speakers):
        wav = load_reference(find_utterance(args.librispeech, speaker)).wav
        speech = pipeline.encoder.preprocess(wav, pipeline.sample_rate)
        embedding = pipeline.encoder.embed_utterance(speech[: int(5 * pipeline.encoder.sample_rate)])
        sentence = EVALUATION_SENTENCES[(index + args.seed) % len(EVALUATION_SENTENCES)]
        row = {"speaker": speaker, "sentence": sentence}
        for label, semitones, energy in SETTINGS:
            synthesis = pipeline.synthesize([sentence], embedding, seed=args.seed + index, pitch_shift=semitones,
                                            energy=energy)
            audio = pipeline.vocode(synthesis.mels[0], args.vocoder, seed=args.seed + index)
            transcript = transcriber.transcribe(audio)
            row[label] = {"f0": median_f0(audio, pipeline.sample_rate), "loudness_db": loudness_db(audio),
                          "wer": word_error_rate(sentence, transcript), "transcript": transcript}
        rows.append(row)
    summary = {}
    for label, *_ in SETTINGS:
        semitones = [12 * np.log2(r[label]["f0"] / r[SETTINGS[0][0]]["f0"]) for r in rows]
        decibels = [r[label]["loudness_db"] - r[SETTINGS[0][0]]["loudness_db"] for r in rows]
        summary[label] = {"semitones": float(np.nanmean(semitones)), "semitones_sd": float(np.nanstd(semitones)),
                          "decibels": float(np.mean(decibels)), "wer": float(np.mean([r[label]["wer"] for r in rows]))}
    return {"synthesizer": str(paths.synthesizer), "vocoder": args.vocoder, "clones": rows, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", "--models_dir", type=Path, default=REPO_ROOT / "saved_models")
    parser.add_argument("-s", "--syn_model_fpath", type=Path, default=None)
    parser.add_argument("-v", "--voc_model_fpath", type=Path, default=None)
    parser.add_argument("--vocoder", default="istft", choices=("istft", "griffinlim", "wavernn"))
    parser.add_argument("--librispeech", type=Path, default=DEFAULT_LIBRISPEECH)
    parser.add_argument("--speakers", default=",".join(HELD_OUT_SPEAKERS), help="comma-separated speaker ids")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object (with every transcript)")
    args = parser.parse_args(argv)
    args.speakers = [s for s in args.speakers.split(",") if s]
    return run_and_print(lambda: run(args), args.json, print_summary, errors=(OSError, ValueError))


def print_summary(result: dict) -> None:
    print(f"{len(result['clones'])} held-out speakers, {result['synthesizer']} + {result['vocoder']}")
    print(f"{'setting':<14} {'F0 change (st)':>16} {'level change (dB)':>18} {'WER':>7}")
    for label, row in result["summary"].items():
        print(f"{label:<14} {row['semitones']:>+9.2f} ± {row['semitones_sd']:.2f} {row['decibels']:>+18.2f} "
              f"{100 * row['wer']:>6.1f}%")


if __name__ == "__main__":
    sys.exit(main())
