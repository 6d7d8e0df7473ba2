"""Measure how intelligible and how close to the reference voice cloned speech is.

Word error rate by Whisper, GE2E similarity to the reference and DNSMOS, per vocoder and paired with a
baseline on the same mels; what each number means and example commands: docs/benchmarks.md."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from utils.arguments import fail

if TYPE_CHECKING:
    from utils.dnsmos import DnsmosScorer, DnsmosScores

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LIBRISPEECH = REPO_ROOT.parent / "shared" / "datasets" / "LibriSpeech" / "train-clean-100"

#: LibriSpeech train-clean-100 speakers kept out of the shipped models' training (10 F then 10 M).
HELD_OUT_SPEAKERS = ("19", "200", "248", "403", "669", "1088", "1263", "1502", "1737", "1963",
                     "60", "118", "307", "446", "909", "2136", "2911", "3723", "4859", "5192")

#: Harvard sentences (IEEE Recommended Practice for Speech Quality Measurements, 1969), lists 1-2.
EVALUATION_SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
)


@dataclass
class HeldOutReference:
    speaker: str
    embedding: np.ndarray  # (256,) of the first reference_seconds of speech
    rest_embedding: np.ndarray | None  # (256,) of the rest of the recording, when long enough
    dnsmos: DnsmosScores  # of the whole recording, as read from the file


@dataclass
class Clone:
    speaker: str
    vocoder: str
    text: str
    transcript: str
    wer: float
    similarity: float  # cosine to the speaker's reference
    closest_is_own: bool
    audio_seconds: float
    dnsmos: DnsmosScores
    seed: int  # the benchmark set (--seed) it belongs to


@dataclass
class VocoderReport:
    vocoder: str
    wer: float
    similarity: float
    closest_reference_rate: float
    dnsmos: DnsmosScores  # means over the clones
    synthesizer_rtf: float
    vocoder_rtf: float
    clones: list[Clone] = field(default_factory=list)


@dataclass
class PairedDifference:
    """One vocoder's clones minus the baseline's clones of the same mels, for one metric."""

    vocoder: str
    baseline: str
    metric: str  # "similarity", "p808", "ovrl" or "sig"
    mean: float
    standard_error: float
    higher: int  # clones scoring higher than the baseline's
    clones: int


#: Metrics compared clone by clone with the baseline vocoder (higher is better for each).
PAIRED_METRICS = ("similarity", "p808", "ovrl", "sig")


def find_utterance(librispeech: Path, speaker: str) -> Path:
    files = sorted((librispeech / speaker).glob("*/*.flac"))
    if not files:
        raise FileNotFoundError(f"No LibriSpeech recording of speaker {speaker} under '{librispeech}'.")
    return files[0]


def make_reference(pipeline, dnsmos: DnsmosScorer, path: Path, speaker: str, seconds: float) -> HeldOutReference:
    """Embed the first ``seconds`` of speech and the rest; DNSMOS of the whole recording."""
    from pipeline import load_reference

    encoder = pipeline.encoder
    wav = load_reference(path).wav
    speech = encoder.preprocess(wav, pipeline.sample_rate)
    cut = int(seconds * encoder.sample_rate)
    head = encoder.embed_utterance(speech[:cut])
    rest = encoder.embed_utterance(speech[cut:]) if len(speech) - cut >= 2 * encoder.sample_rate else None
    return HeldOutReference(speaker, head, rest, dnsmos.score(wav, pipeline.sample_rate))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def metric(clone: Clone, name: str) -> float:
    return clone.similarity if name == "similarity" else getattr(clone.dnsmos, name)


def paired_differences(clones: dict[str, list[Clone]]) -> list[PairedDifference]:
    """Each vocoder against the baseline (``griffinlim`` if scored, else the first), clone by clone."""
    labels = list(clones)
    if len(labels) < 2:
        return []
    from vocoder import registry as vocoders

    model_free = [label for label in labels if label in vocoders.names() and not vocoders.needs_file(label)]
    baseline = model_free[0] if model_free else labels[0]
    result = []
    for label in labels:
        if label == baseline:
            continue
        for name in PAIRED_METRICS:
            differences = np.array([metric(a, name) - metric(b, name)
                                    for a, b in zip(clones[label], clones[baseline], strict=True)])
            error = float(np.std(differences, ddof=1) / np.sqrt(len(differences))) if len(differences) > 1 else 0.0
            result.append(PairedDifference(label, baseline, name, float(np.mean(differences)), error,
                                           int(np.sum(differences > 0)), len(differences)))
    return result


def summarize(clones: dict[str, list[Clone]], synth_seconds: float, vocode_seconds: dict[str, float],
              audio_seconds: float) -> dict:
    from utils.asr import corpus_word_error_rate
    from utils.dnsmos import mean_scores

    reports = [
        VocoderReport(
            label,
            corpus_word_error_rate([c.text for c in done], [c.transcript for c in done]),
            float(np.mean([c.similarity for c in done])),
            float(np.mean([c.closest_is_own for c in done])),
            mean_scores([c.dnsmos for c in done]),
            synth_seconds / audio_seconds,
            vocode_seconds[label] / audio_seconds,
            done,
        )
        for label, done in clones.items()
    ]
    return {"reports": [asdict(report) for report in reports],
            "paired": [asdict(difference) for difference in paired_differences(clones)]}


def run(args: argparse.Namespace) -> dict:
    import torch

    from pipeline import ClonePipeline, resolve_models
    from utils.asr import Transcriber, word_error_rate
    from utils.dnsmos import DnsmosScorer, mean_scores
    from utils.signal_contract import SIGNAL
    from vocoder import registry as vocoders

    warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    neural = next((v for v in args.vocoders if vocoders.needs_file(v)), args.vocoders[0])
    paths = resolve_models(args.models_dir, encoder=args.enc_model_fpath, synthesizer=args.syn_model_fpath,
                           vocoder=args.voc_model_fpath, vocoder_name=neural).paths
    pipeline = ClonePipeline(paths, torch.device("cpu"))
    transcriber = Transcriber.load(threads=args.threads or 0)
    dnsmos = DnsmosScorer.load(threads=args.threads or 0)

    references = [make_reference(pipeline, dnsmos, find_utterance(args.librispeech, speaker), speaker,
                                 args.reference_seconds)
                  for speaker in args.speakers]
    different = [cosine(a.embedding, b.embedding) for a, b in itertools.combinations(references, 2)]
    same = [cosine(r.embedding, r.rest_embedding) for r in references if r.rest_embedding is not None]
    reference_matrix = np.stack([r.embedding for r in references])  # (S, 256)

    # Every vocoder turns the same synthesized mel into audio: the comparison between them is paired.
    variants = [(name, lambda mel, seed, name=name: pipeline.vocode(mel, name, seed=seed)) for name in args.vocoders]
    for path in args.compare_istft:
        for contrast in args.compare_contrasts or [None]:
            extra = vocoders.kind_class("istft").from_checkpoint(path)
            extra.use_synthesized_mels()  # exactly as the pipeline would use it
            label = f"file@{path.parent.name}/{path.stem}"
            if contrast is not None:
                extra.contrast, label = contrast, f"{label}@contrast{contrast:g}"
            variants.append((label, lambda mel, seed, extra=extra: extra.vocode(mel)))
    sets = []
    for benchmark_seed in args.seed:
        rng = np.random.default_rng(benchmark_seed)
        clones: dict[str, list[Clone]] = {label: [] for label, _ in variants}
        vocode_seconds = dict.fromkeys(clones, 0.0)
        synth_seconds = audio_seconds = 0.0
        sentence_cycle = itertools.cycle(rng.permutation(len(EVALUATION_SENTENCES)).tolist())
        plan = [(reference, [EVALUATION_SENTENCES[next(sentence_cycle)] for _ in range(args.sentences_per_speaker)])
                for reference in references]
        for index, (reference, sentences) in enumerate(plan):
            for number, sentence in enumerate(sentences):
                seed = benchmark_seed + 1000 * index + number
                start = time.perf_counter()
                synthesis = pipeline.synthesize([sentence], reference.embedding, seed=seed,
                                                speaking_rate=args.speaking_rate)
                synth_seconds += time.perf_counter() - start
                audio_seconds += (synthesis.mels[0].shape[1] - 1) * SIGNAL.hop_size / SIGNAL.sample_rate
                for label, vocode in variants:
                    start = time.perf_counter()
                    wav = vocode(synthesis.mels[0], seed)
                    vocode_seconds[label] += time.perf_counter() - start
                    transcript = transcriber.transcribe(wav)
                    speech = pipeline.encoder.preprocess(wav, pipeline.sample_rate)
                    embedding = pipeline.encoder.embed_utterance(speech if len(speech) > 1600 else wav)
                    similarities = reference_matrix @ embedding  # (S,) unit vectors: cosines
                    clone = Clone(reference.speaker, label, sentence, transcript, word_error_rate(sentence, transcript),
                                  float(similarities[index]), bool(np.argmax(similarities) == index),
                                  len(wav) / pipeline.sample_rate, dnsmos.score(wav, pipeline.sample_rate),
                                  benchmark_seed)
                    clones[label].append(clone)
                    if args.save_dir:
                        from utils.audio_io import save_audio
                        name = label.replace("/", "_")
                        save_audio(args.save_dir / f"{name}-seed{benchmark_seed}-{reference.speaker}-{number}.wav",
                                   wav, pipeline.sample_rate)
                    if args.verbose:
                        print(f"{label} {reference.speaker}: {clone.wer:.2f} sim {clone.similarity:.2f} "
                              f"P.808 {clone.dnsmos.p808:.2f} OVRL {clone.dnsmos.ovrl:.2f} | "
                              f"{sentence} -> {transcript}", flush=True)
        sets.append((benchmark_seed, clones, synth_seconds, vocode_seconds, audio_seconds))

    # Both sets together: every clone once, every second of work once.
    pooled = {label: [c for _, clones, *_ in sets for c in clones[label]] for label, _ in variants}
    result = {
        "synthesizer": str(paths.synthesizer),
        "vocoder": str(paths.vocoder) if paths.vocoder else None,
        "speakers": list(args.speakers),
        "reference_seconds": args.reference_seconds,
        "sentences_per_speaker": args.sentences_per_speaker,
        "seeds": list(args.seed),
        "different_speaker_similarity": float(np.mean(different)) if different else None,
        "same_speaker_similarity": float(np.mean(same)) if same else None,
        "reference_dnsmos": asdict(mean_scores([r.dnsmos for r in references])),
        "reference_dnsmos_by_speaker": {r.speaker: asdict(r.dnsmos) for r in references},
        **summarize(pooled, sum(s[2] for s in sets), {label: sum(s[3][label] for s in sets) for label in pooled},
                    sum(s[4] for s in sets)),
        "per_seed": [{"seed": seed, **summarize(*rest)} for seed, *rest in sets] if len(sets) > 1 else [],
    }
    return result


def print_reports(reports: list[dict], paired: list[dict]) -> None:
    width = max([12] + [len(report["vocoder"]) + 2 for report in reports])
    print(f"{'vocoder':<{width}}{'WER':>8}{'similarity':>12}{'closest ref':>13}{'P.808':>7}{'OVRL':>6}{'SIG':>6}"
          f"{'synth RTF':>11}{'vocoder RTF':>13}")
    for report in reports:
        dnsmos = report["dnsmos"]
        print(f"{report['vocoder']:<{width}}{report['wer']:>8.1%}{report['similarity']:>12.3f}"
              f"{report['closest_reference_rate']:>13.0%}{dnsmos['p808']:>7.2f}{dnsmos['ovrl']:>6.2f}{dnsmos['sig']:>6.2f}"
              f"{report['synthesizer_rtf']:>11.3f}{report['vocoder_rtf']:>13.3f}")
    names = {"similarity": "similarity", "p808": "P.808", "ovrl": "OVRL", "sig": "SIG"}
    for label in dict.fromkeys(difference["vocoder"] for difference in paired):
        rows = [d for d in paired if d["vocoder"] == label]
        print(f"  {label} - {rows[0]['baseline']}, clone by clone (mean ± standard error, clones higher):")
        print("    " + "   ".join(f"{names[d['metric']]} {d['mean']:+.3f} ± {d['standard_error']:.3f} "
                                  f"({d['higher']}/{d['clones']})" for d in rows))


def print_table(result: dict) -> None:
    print(f"Synthesizer: {result['synthesizer']}\nVocoder:     {result['vocoder']}")
    print(f"{len(result['speakers'])} held-out LibriSpeech speakers, {result['reference_seconds']:g} s references, "
          f"{result['sentences_per_speaker']} sentence(s) each, benchmark seed(s) "
          f"{', '.join(str(seed) for seed in result['seeds'])}")
    def shown(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"  # one speaker has no pair to compare

    print(f"Real speech: same speaker {shown(result['same_speaker_similarity'])}, "
          f"different speakers {shown(result['different_speaker_similarity'])} (GE2E cosine)")
    ceiling = result["reference_dnsmos"]
    print(f"Real reference recordings (the ceiling): DNSMOS P.808 {ceiling['p808']:.2f}, OVRL {ceiling['ovrl']:.2f}, "
          f"SIG {ceiling['sig']:.2f}, BAK {ceiling['bak']:.2f}")
    for one in result["per_seed"]:
        print(f"\nBenchmark seed {one['seed']}:")
        print_reports(one["reports"], one["paired"])
    if result["per_seed"]:
        print("\nAll seeds together:")
    print_reports(result["reports"], result["paired"])


def comma_list(text: str) -> list[str]:
    """
    >>> comma_list(" istft, griffinlim,,")
    ['istft', 'griffinlim']
    """
    return [part.strip() for part in text.split(",") if part.strip()]


def run_and_print(run: Callable[[], dict], as_json: bool, show: Callable[[dict], None], *,
                  errors: tuple[type[Exception], ...] = (), indent: int = 1) -> int:
    """The benchmarks' exit status: print ``run()``'s result as JSON or with ``show``; one of ``errors``
    becomes a one-line error and status 1."""
    try:
        result = run()
    except errors as error:
        return fail(str(error))
    if as_json:
        print(json.dumps(result, indent=indent))
    else:
        show(result)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", "--models_dir", type=Path, default=REPO_ROOT / "saved_models")
    parser.add_argument("-e", "--enc_model_fpath", type=Path, default=None)
    parser.add_argument("-s", "--syn_model_fpath", type=Path, default=None)
    parser.add_argument("-v", "--voc_model_fpath", type=Path, default=None)
    parser.add_argument("--vocoders", default="griffinlim",
                        help="comma-separated: wavernn, istft (the kind of the -v file), griffinlim")
    parser.add_argument("--compare_istft", type=Path, nargs="+", default=[],
                        help="more neural vocoder files (iSTFT or WaveRNN), each scored on the same "
                             "synthesized mels as the others")
    parser.add_argument("--compare_contrasts", type=float, nargs="+", default=[],
                        help="score each --compare_istft iSTFT file at each of these spectral contrasts "
                             "(default: the pipeline's own, vocoder.istft.inference.SYNTHESIZED_MEL_CONTRAST)")
    parser.add_argument("--speaking_rate", type=float, default=1.0, help="synthesizer pace (1 = the model's own)")
    parser.add_argument("--librispeech", type=Path, default=DEFAULT_LIBRISPEECH,
                        help="LibriSpeech train-clean-100 folder (default: %(default)s)")
    parser.add_argument("--speakers", default=",".join(HELD_OUT_SPEAKERS), help="comma-separated speaker ids")
    parser.add_argument("--sentences_per_speaker", type=int, default=2)
    parser.add_argument("--reference_seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, nargs="+", default=[0],
                        help="benchmark set(s): the sentences and synthesis seeds; several (--seed 0 1) are "
                             "reported one by one and together (default: 0)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch, the ASR and DNSMOS")
    parser.add_argument("--save_dir", type=Path, default=None, help="also write every clone here")
    parser.add_argument("--json", action="store_true", help="print one JSON object (with every transcript)")
    parser.add_argument("--verbose", action="store_true", help="print each clone's transcript as it is scored")
    args = parser.parse_args(argv)
    args.vocoders, args.speakers = comma_list(args.vocoders), comma_list(args.speakers)
    if not args.librispeech.is_dir():
        return fail(f"the LibriSpeech folder '{args.librispeech}' does not exist (give --librispeech).")
    if args.save_dir:
        args.save_dir.mkdir(parents=True, exist_ok=True)
    return run_and_print(lambda: run(args), args.json, print_table,
                         errors=(FileNotFoundError, RuntimeError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
