"""Text -> phoneme ids with espeak-ng, the duration synthesizer's text front-end.

Cleaned text is phonemized (US English IPA with stress, punctuation kept); each IPA character is a
symbol, with a blank (id 0) between symbols and at both ends, as in VITS, so the alignment has a place
for transitions and pauses. Checkpoints store the table and the espeak-ng version.

>>> table = SymbolTable.default()
>>> table.encode("hə")  # blank, h, blank, ə, blank
[0, 28, 0, 67, 0]
>>> table.decode([0, 28, 0, 67, 0])
'hə'
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from synthesizer.text import clean_text
from utils.errors import REASON_LIMIT, UserError, one_line

BLANK = "_"
# Word separator and the punctuation espeak-ng keeps (preserve_punctuation), then IPA.
PUNCTUATION = " !\"'(),-.:;?¡¿—…«»“”"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
IPA = (
    "æçðøħŋœǀǁǂǃɐɑɒɓɔɕɖɗɘəɚɛɜɝɞɟɠɡɢɣɤɥɦɧɨɪɫɬɭɮɯɰɱɲɳɴɵɶɸɹɺɻɽɾʀʁʂʃʄʈʉʊʋʌʍʎʏʐʑʒʔʕʘʙʛʜʝʟʡʢʲ"
    "ˈˌːˑ˞βθχᵻⱱ\u0303\u0329\u032a\u0361"
)
ESPEAK_LANGUAGE = "en-us"
_KEPT_PUNCTUATION = ';:,.!?¡¿—…"«»“”()'


def _silent_logger() -> logging.Logger:
    """A logger dropping phonemizer's harmless "words count mismatch" notes."""
    logger = logging.getLogger("sv2tts.phonemizer")
    logger.handlers = [logging.NullHandler()]
    logger.propagate = False
    return logger


class PhonemizerError(UserError, RuntimeError):
    """espeak-ng (or the phonemizer package) is missing or failed; the message is one line."""


#: Environment variables that point phonemizer and espeak-ng at another library or data folder.
ESPEAK_SETTINGS = ("PHONEMIZER_ESPEAK_LIBRARY", "ESPEAK_DATA_PATH")
_INSTALL_ADVICE = "install or repair it (apt-get install --reinstall espeak-ng espeak-ng-data)"
# Runs in a child process: a broken espeak-ng calls exit() with its own message, or segfaults, and
# would take the CLI or the whole toolbox window with it.
_PROBE = """
import sys, warnings
warnings.simplefilter("ignore")
try:
    from phonemizer.backend import EspeakBackend
except ImportError:
    sys.exit(3)
try:
    EspeakBackend(sys.argv[1]).phonemize(["hello world, one two three"], strip=True)
except Exception as error:
    print(" ".join(str(error).split()), file=sys.stderr)
    sys.exit(2)
"""
#: Verdict of the probe per (language, settings): espeak-ng is checked once per process.
_CHECKED: dict[tuple[str | None, ...], str | None] = {}


def _settings_text() -> str:
    shown = [f"{name}={os.environ[name]}" for name in ESPEAK_SETTINGS if os.environ.get(name)]
    return f" with {', '.join(shown)}" if shown else ""


def _advice() -> str:
    # A setting that points at the wrong place is the likelier cause than a broken installation.
    return ("fix or unset that setting, or " if _settings_text() else "") + _INSTALL_ADVICE


def espeak_problem(language: str = ESPEAK_LANGUAGE) -> str | None:
    """Why espeak-ng cannot phonemize here (one line), or None; checked once, in a child process."""
    key = (language, *(os.environ.get(name) for name in ESPEAK_SETTINGS))
    if key not in _CHECKED:
        _CHECKED[key] = _probe_espeak(language)
    return _CHECKED[key]


def _probe_espeak(language: str) -> str | None:
    try:
        result = subprocess.run([sys.executable, "-c", _PROBE, language], capture_output=True, text=True,
                                errors="replace", timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"espeak-ng could not be checked{_settings_text()} ({one_line(error, REASON_LIMIT)})"
    if result.returncode == 0:
        return None
    if result.returncode == 3:
        return "the phonemizer package is not installed (pip install phonemizer)"
    settings = _settings_text()
    if result.returncode < 0:
        name = signal.Signals(-result.returncode).name if -result.returncode in signal.valid_signals() else "a signal"
        return f"espeak-ng crashed ({name}) while loading its data{settings}; {_advice()}"
    lines = [line for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    reason = one_line(lines[-1] if lines else f"exit status {result.returncode}", REASON_LIMIT)
    return f"espeak-ng is not usable{settings} ({reason}); {_advice()}"


@dataclass(frozen=True)
class SymbolTable:
    """The phoneme symbols a model was trained with: ``symbols[0]`` is the blank/padding symbol."""

    symbols: str

    @classmethod
    def default(cls) -> "SymbolTable":
        return cls(BLANK + PUNCTUATION + LETTERS + IPA)

    def __post_init__(self) -> None:
        if not self.symbols or self.symbols[0] != BLANK or len(set(self.symbols)) != len(self.symbols):
            raise ValueError("a symbol table starts with the blank '_' and lists each symbol once")

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def _ids(self) -> dict[str, int]:
        return {symbol: index for index, symbol in enumerate(self.symbols)}

    def unknown(self, phonemes: str) -> list[str]:
        ids = self._ids
        return list(dict.fromkeys(ch for ch in phonemes if ch not in ids))

    def encode(self, phonemes: str) -> list[int]:
        """Ids with a blank between symbols and at both ends; unknown characters are skipped."""
        ids = self._ids
        encoded = [0]
        for character in phonemes:
            if character in ids and character != BLANK:
                encoded += [ids[character], 0]
        return encoded

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.symbols[i] for i in ids if i != 0)


class Phonemizer:
    """Cleaned English text -> IPA through espeak-ng (one backend per object, thread-safe)."""

    def __init__(self, language: str = ESPEAK_LANGUAGE) -> None:
        self.language = language
        self._backend = None
        self._lock = threading.Lock()

    def _get_backend(self):  # noqa: ANN202 - phonemizer's class, imported lazily
        if self._backend is None:
            problem = espeak_problem(self.language)
            if problem is not None:
                raise PhonemizerError(problem)
            try:
                from phonemizer.backend import EspeakBackend

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    # Quiet: its "words count mismatch" notes are harmless here and would reach the user's terminal.
                    self._backend = EspeakBackend(self.language, preserve_punctuation=True, with_stress=True,
                                                  punctuation_marks=_KEPT_PUNCTUATION,
                                                  language_switch="remove-flags", logger=_silent_logger())
            except ImportError:
                raise PhonemizerError("the phonemizer package is not installed (pip install phonemizer)") from None
            except RuntimeError as error:
                raise PhonemizerError(f"espeak-ng is not usable{_settings_text()} ({one_line(error, REASON_LIMIT)}); "
                                      f"{_advice()}") from None
        return self._backend

    @property
    def version(self) -> str:
        return ".".join(str(part) for part in self._get_backend().version())

    def phonemize(self, cleaned_texts: Sequence[str]) -> list[str]:
        with self._lock:
            backend = self._get_backend()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "words count mismatch" is harmless here
                return [" ".join(line.split()) for line in backend.phonemize(list(cleaned_texts), strip=True)]


@dataclass(frozen=True)
class PhonemizedText:

    cleaned: str
    phonemes: str
    ids: list[int]
    dropped: tuple[str, ...]  # phoneme characters with no symbol


class PhonemeFrontEnd:
    """Cleaners, espeak-ng and the model's symbol table: raw text -> model ids."""

    def __init__(self, table: SymbolTable | None = None, cleaner_names: Sequence[str] = ("english_cleaners",),
                 phonemizer: Phonemizer | None = None) -> None:
        self.table = table or SymbolTable.default()
        self.cleaner_names = tuple(cleaner_names)
        self.phonemizer = phonemizer or Phonemizer()

    def clean(self, text: str) -> str:
        return clean_text(text, self.cleaner_names)

    def __call__(self, texts: Sequence[str]) -> list[PhonemizedText]:
        cleaned = [self.clean(text) for text in texts]
        phonemes = self.phonemizer.phonemize(cleaned)
        return [self.from_phonemes(c, p) for c, p in zip(cleaned, phonemes)]

    def from_phonemes(self, cleaned: str, phonemes: str) -> PhonemizedText:
        return PhonemizedText(cleaned, phonemes, self.table.encode(phonemes), tuple(self.table.unknown(phonemes)))
