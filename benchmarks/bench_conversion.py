"""Measure voice conversion (``demo_cli.py --source``) on held-out real speakers: WER, similarity to
target and source, duration and F0 correlation (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from bench_quality import run_and_print  # noqa: E402 - this script's own folder is on the path
DEFAULT_HELDOUT = REPO_ROOT.parent / "shared" / "heldout" / "LibriSpeech" / "train-clean-5"
FEMALE, MALE = ("19", "669", "1088", "1737"), ("118", "2136")
# (source, target): 3 male→female, 3 female→male, one within each gender
PAIRS = (("118", "19"), ("2136", "669"), ("118", "1737"), ("19", "118"), ("669", "2136"), ("1088", "2136"),
         ("1737", "1088"), ("2136", "118"))
BARS = {"wer": 0.15, "target_similarity": 0.72, "similarity_margin": 0.10, "duration_low": 0.9,
        "duration_high": 1.1, "f0_correlation": 0.5}


def utterances(root: Path, speaker: str) -> list[Path]:
    return sorted((root / speaker).glob("*/*.ogg"))


def pick_source(files: list[Path], skip: int = 2) -> Path:
    """The first utterance after the ``skip`` used as references that lasts 4-12 s."""
    import soundfile

    for path in files[skip:]:
        if 4.0 <= soundfile.info(str(path)).duration <= 12.0:
            return path
    raise SystemExit(f"no 4-12 s utterance among {len(files)} of '{files[0].parent.parent.name}'")


def contour_correlation(a: np.ndarray, b: np.ndarray) -> float:
    from synthesizer.duration.conversion import frame_f0, time_normalised_correlation
    from synthesizer.duration.pitch import continuous_log_f0

    return time_normalised_correlation(continuous_log_f0(frame_f0(a)), continuous_log_f0(frame_f0(b)))


def run(args: argparse.Namespace) -> dict:
    import torch

    from pipeline import ClonePipeline, load_reference, resolve_models
    from synthesizer.duration.conversion import F0Register, f0_register
    from utils.asr import word_error_rate

    torch.set_num_threads(args.threads)
    models = resolve_models(args.models_dir, synthesizer=args.syn_model_fpath, vocoder=args.voc_model_fpath,
                            vocoder_name=args.vocoder)
    pipeline = ClonePipeline(models.paths, "cpu")
    pipeline.load_all(models.vocoder)
    voices, references = {}, {}
    for speaker in sorted({s for pair in PAIRS for s in pair}):
        references[speaker] = [load_reference(path) for path in utterances(args.heldout, speaker)[:2]]
        voices[speaker] = pipeline.embed_references(references[speaker])
    rows = []
    for source_speaker, target_speaker in PAIRS:
        source_path = pick_source(utterances(args.heldout, source_speaker))
        source = load_reference(source_path)
        register = F0Register.combine([f0_register(r.wav) for r in references[target_speaker]])
        start = time.perf_counter()
        result = pipeline.convert(voices[target_speaker], source, target_register=register,
                                  vocoder=models.vocoder, seed=args.seed)
        seconds = time.perf_counter() - start
        heard = pipeline.transcriber.transcribe(result.wav)
        embedding = pipeline.embed_reference((result.wav, result.sample_rate), "conversion").embedding
        row = {
            "source": f"{source_speaker} ({'F' if source_speaker in FEMALE else 'M'})",
            "target": f"{target_speaker} ({'F' if target_speaker in FEMALE else 'M'})",
            "file": source_path.name, "source_text": result.transcript, "heard": heard,
            "wer": word_error_rate(result.transcript, heard),
            "target_similarity": float(embedding @ voices[target_speaker].embedding),
            "source_similarity": float(embedding @ voices[source_speaker].embedding),
            "duration_ratio": result.duration / (len(source.wav) / 16000),
            "f0_correlation": contour_correlation(source.wav, result.wav),
            "pitch_transferred": result.pitch_transferred, "seconds": seconds,
        }
        rows.append(row)
        if not args.json:
            print(f"{row['source']:>8} → {row['target']:<8} WER {row['wer']:5.1%}  sim target "
                  f"{row['target_similarity']:.3f} source {row['source_similarity']:.3f}  duration "
                  f"{row['duration_ratio']:.3f}  F0 r {row['f0_correlation']:+.2f}  ({seconds:.1f} s)", flush=True)
    summary = {
        "wer": float(np.mean([r["wer"] for r in rows])),
        "target_similarity": float(np.mean([r["target_similarity"] for r in rows])),
        "source_similarity": float(np.mean([r["source_similarity"] for r in rows])),
        "min_similarity_margin": float(min(r["target_similarity"] - r["source_similarity"] for r in rows)),
        "duration_ratio_range": [float(min(r["duration_ratio"] for r in rows)),
                                 float(max(r["duration_ratio"] for r in rows))],
        "f0_correlation": float(np.mean([r["f0_correlation"] for r in rows])),
        "pitch_transferred": all(r["pitch_transferred"] for r in rows),
    }
    return {"synthesizer": str(models.paths.synthesizer), "vocoder": models.vocoder, "rows": rows,
            "summary": summary, "bars": BARS}


def print_summary(report: dict) -> None:
    s, bars = report["summary"], report["bars"]
    low, high = s["duration_ratio_range"]
    print(f"\nsynthesizer {report['synthesizer']}, vocoder {report['vocoder']}")
    print(f"WER {s['wer']:.1%} (bar ≤ {bars['wer']:.0%})")
    print(f"GE2E similarity to target {s['target_similarity']:.3f} (bar ≥ {bars['target_similarity']}), "
          f"to source {s['source_similarity']:.3f}; smallest margin {s['min_similarity_margin']:.3f} "
          f"(bar ≥ {bars['similarity_margin']})")
    print(f"duration ratio {low:.3f}-{high:.3f} (bar {bars['duration_low']}-{bars['duration_high']})")
    note = "" if s["pitch_transferred"] else " (no pitch input: durations only)"
    print(f"log-F0 contour correlation {s['f0_correlation']:.2f} (bar ≥ {bars['f0_correlation']}){note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heldout", type=Path, default=DEFAULT_HELDOUT)
    parser.add_argument("-m", "--models_dir", type=Path, default=REPO_ROOT / "saved_models")
    parser.add_argument("-s", "--syn_model_fpath", type=Path, default=None)
    parser.add_argument("-v", "--voc_model_fpath", type=Path, default=None)
    parser.add_argument("--vocoder", choices=("wavernn", "istft", "griffinlim"), default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.heldout.is_dir():
        print(f"error: the held-out speakers are not at '{args.heldout}'", file=sys.stderr)
        return 1
    return run_and_print(lambda: run(args), args.json, print_summary, indent=2)


if __name__ == "__main__":
    sys.exit(main())
