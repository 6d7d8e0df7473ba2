"""Voice conversion with the duration synthesizer: a recording's words and timing in another voice.

How it works: docs/synthesizer.md.

>>> register = F0Register(mean=float(np.log(100.0)), spread=0.1)
>>> high = F0Register(mean=float(np.log(200.0)), spread=0.2)
>>> np.round(np.exp(transfer_log_f0(np.log([100.0, 110.0], dtype=np.float32), register, high)), 1).tolist()
[200.0, 242.0]
>>> phoneme_average(np.array([1.0, 3.0, 5.0, 7.0]), np.array([1, 3])).tolist()
[1.0, 5.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from synthesizer.duration.alignment import maximum_path
from synthesizer.duration.model import LOG_F0_CENTRE, LOG_F0_SCALE, DurationSynthesizerModel, Prosody
from synthesizer.duration.pitch import continuous_log_f0, estimate_f0
from utils.checkpoints import require_finite
from utils.errors import UserError
from utils.signal_contract import SIGNAL

#: Longest source accepted (5 minutes).
MAX_SOURCE_SECONDS = 300.0
#: A word is not said when the text fits the recording better without it by more than this much
#: log-likelihood per frame of the recording (summed over mel bands). With the shipped synthesizer,
#: words put into the text of espeak-ng and real speech measured 5.0-5.6; said words of real speech
#: (held-out LibriSpeech with Whisper's words) up to 2.3: short function words in fast speech also fit
#: better left out, so the test is only as sharp as this margin.
MIN_GAIN_WITHOUT = 3.5
#: Past this many words that are not said, the text is not the recording's.
MAX_MISSING_WORDS = 6
_PUNCTUATION = ".,;:!?\"'()"
#: Voiced frames needed for a register (0.25 s).
MIN_VOICED_FRAMES = 20
#: Smallest spread of log F0 taken as measured (a monotone reading would otherwise be blown up).
MIN_SPREAD = 0.03
#: The flow post-net's noise for conversion, half the shipped text-to-speech 0.3: timing and pitch come
#: from the source, and less sampled detail kept words clearer (bench_conversion, 8 pairs, seeds 0/1:
#: WER 18.1/15.0 % at 0.3, 14.3/13.9 % at 0.15; at 0 the F0 correlation fell from 0.58 to 0.49).
CONVERSION_FLOW_TEMPERATURE = 0.15


class ConversionError(UserError, ValueError):
    """The source recording cannot be converted; the message says why in one sentence."""


@dataclass(frozen=True)
class F0Register:
    """A voice's pitch register: mean and standard deviation of log F0 (Hz) over voiced frames."""

    mean: float
    spread: float

    @property
    def hertz(self) -> float:
        return float(np.exp(self.mean))

    @classmethod
    def from_f0(cls, f0: np.ndarray) -> "F0Register | None":
        """The register of an F0 track (Hz, 0 when unvoiced), or ``None`` with too few voiced frames."""
        voiced = np.asarray(f0, np.float64)
        voiced = np.log(voiced[voiced > 0])
        if len(voiced) < MIN_VOICED_FRAMES:
            return None
        return cls(float(voiced.mean()), max(float(voiced.std()), MIN_SPREAD))

    @classmethod
    def combine(cls, registers: Sequence["F0Register | None"]) -> "F0Register | None":
        """The average register of several recordings of one voice (``None`` entries ignored)."""
        known = [register for register in registers if register is not None]
        if not known:
            return None
        return cls(float(np.mean([r.mean for r in known])), float(np.mean([r.spread for r in known])))


def frame_f0(wav: np.ndarray, n_frames: int | None = None) -> np.ndarray:
    """F0 in Hz per mel frame ``(n_frames,)`` of 16 kHz audio (0 unvoiced); default: the mel's frame count."""
    n_frames = 1 + len(wav) // SIGNAL.hop_size if n_frames is None else n_frames
    return estimate_f0(np.asarray(wav, np.float32), SIGNAL.sample_rate, SIGNAL.hop_size, n_frames)


def f0_register(wav: np.ndarray) -> F0Register | None:
    return F0Register.from_f0(frame_f0(wav))


def transfer_log_f0(log_f0: np.ndarray, source: F0Register, target: F0Register) -> np.ndarray:
    """Move a log-F0 contour from the ``source`` register to the ``target``'s: same shape, new mean and spread."""
    return ((np.asarray(log_f0, np.float64) - source.mean) / source.spread * target.spread
            + target.mean).astype(np.float32)


def phoneme_average(values: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """The mean of a per-frame track over each phoneme's frames, ``(S,)``; 0 for a phoneme with none."""
    durations = np.asarray(durations, np.int64)
    ends = np.cumsum(durations)
    sums = np.add.reduceat(np.append(np.asarray(values, np.float64), 0.0), np.append(0, ends)[:-1])
    return np.where(durations > 0, sums / np.maximum(durations, 1), 0.0).astype(np.float32)


@dataclass
class SourceAlignment:

    ids: np.ndarray  # (S,) symbol ids, blanks included
    durations: np.ndarray  # (S,) frames per symbol; sums to the mel's frames
    deficits: np.ndarray  # (S,) mean over each symbol's frames of (best symbol's score − its own score)

    @property
    def n_frames(self) -> int:
        return int(self.durations.sum())


def align_source(model: DurationSynthesizerModel, ids: Sequence[int], mel: np.ndarray,
                 source_embedding: np.ndarray) -> SourceAlignment:
    """Align ``ids`` to the source ``mel (80, T)`` under the source speaker's means; :class:`ConversionError`
    when the recording has fewer frames than the text has symbols."""
    ids = np.asarray(ids, np.int64)
    n_frames = mel.shape[1]
    if n_frames < len(ids):
        raise ConversionError(f"The source recording ({n_frames * SIGNAL.hop_size / SIGNAL.sample_rate:.2f} s) is "
                              "too short for its words; give the words it says, or a longer recording.")
    device = next(model.parameters()).device
    with torch.no_grad():
        ids_t = torch.from_numpy(ids)[None].to(device)
        speaker = torch.from_numpy(np.asarray(source_embedding, np.float32))[None].to(device)
        _, means, _, _ = model.encode(ids_t, torch.tensor([len(ids)], device=device), speaker)
        mel_t = torch.from_numpy(np.asarray(mel, np.float32))[None].to(device)
        score = model.alignment_score(means.float(), mel_t)[0].cpu().numpy()  # (S, T)
    path = maximum_path(score[None], np.array([len(ids)]), np.array([n_frames]))[0]
    durations = path.sum(1).astype(np.int64)
    # How much worse each frame fits its symbol than the text's best-fitting symbol: near 0 where the
    # recording says the symbol, large where a word that is not said was squeezed in.
    deficit = score.max(0) - (score * path).sum(0)  # (T,)
    return SourceAlignment(ids, durations, phoneme_average(deficit, durations))


def word_symbol_spans(ids: Sequence[int], space_id: int) -> list[tuple[int, int]]:
    """``[start, end)`` symbol ranges of the words of a blank-interleaved id sequence (split at ``space_id``)."""
    spans, start = [], None
    for index, symbol in enumerate(ids):
        if symbol == space_id:
            if start is not None:
                spans.append((start, index))
            start = None
        elif symbol != 0 and start is None:
            start = index
    if start is not None:
        spans.append((start, len(ids)))
    return spans


def path_score(model: DurationSynthesizerModel, ids: Sequence[int], mel: np.ndarray,
               embedding: np.ndarray) -> float:
    """Total log-likelihood of ``mel`` along the best monotonic path through ``ids`` (``-inf`` when it cannot fit)."""
    ids = np.asarray(ids, np.int64)
    if mel.shape[1] < len(ids):
        return float("-inf")
    device = next(model.parameters()).device
    with torch.no_grad():
        speaker = torch.from_numpy(np.asarray(embedding, np.float32))[None].to(device)
        _, means, _, _ = model.encode(torch.from_numpy(ids)[None].to(device), torch.tensor([len(ids)], device=device),
                                      speaker)
        score = model.alignment_score(means.float(), torch.from_numpy(np.asarray(mel, np.float32))[None].to(device))
        score = score[0].cpu().numpy()
    path = maximum_path(score[None], np.array([len(ids)]), np.array([mel.shape[1]]))[0]
    return float((score * path).sum())


def unaligned_words(model: DurationSynthesizerModel, ids: Sequence[int], mel: np.ndarray, embedding: np.ndarray,
                    spans: Sequence[tuple[int, int]], words: Sequence[str],
                    max_words: int = MAX_MISSING_WORDS) -> list[str]:
    """The words the recording does not say, found by alignment (docs/synthesizer.md); ``spans`` are
    the words' symbol ranges."""
    if len(spans) != len(words) or len(spans) < 2:
        return []
    ids = list(ids)
    kept = list(range(len(words)))
    missing: list[int] = []
    while len(missing) < max_words and len(kept) > 1:
        current = [symbol for index in kept for symbol in _word_ids(ids, spans, index)]
        full = path_score(model, current, mel, embedding)
        gains = []
        for index in kept:
            without = [symbol for other in kept if other != index for symbol in _word_ids(ids, spans, other)]
            gains.append(full - path_score(model, without, mel, embedding))
        worst = int(np.argmin(gains))
        if gains[worst] >= -MIN_GAIN_WITHOUT * mel.shape[1]:
            break
        missing.append(kept.pop(worst))
    return [words[index].strip(_PUNCTUATION) or words[index] for index in sorted(missing)]


def group_words(words: Sequence[str], word_lengths: Sequence[int], unit_lengths: Sequence[int]) -> list[str]:
    """Join consecutive ``words`` into one group per phoneme unit, matching their lengths.

    >>> group_words(["from", "the", "store"], [4, 2, 5], [12, 10])
    ['from the', 'store']
    """
    groups: list[str] = []
    index = 0
    for unit, target in enumerate(unit_lengths):
        units_left = len(unit_lengths) - unit - 1
        group, length = [words[index]], 2 * word_lengths[index]
        index += 1
        while len(words) - index > units_left and (
                units_left == 0 or abs(length + 2 * word_lengths[index] - target) < abs(length - target)):
            group.append(words[index])
            length += 2 * word_lengths[index]
            index += 1
        groups.append(" ".join(group))
    return groups


def _word_ids(ids: Sequence[int], spans: Sequence[tuple[int, int]], index: int) -> list[int]:
    start = 0 if index == 0 else spans[index][0]
    end = spans[index + 1][0] if index + 1 < len(spans) else len(ids)
    return list(ids[start:end])


def normalised_pitch(log_f0: np.ndarray) -> np.ndarray:
    return ((np.asarray(log_f0, np.float64) - LOG_F0_CENTRE) / LOG_F0_SCALE).astype(np.float32)


def phoneme_pitch(f0: np.ndarray, durations: np.ndarray, source: F0Register | None,
                  target: F0Register | None) -> np.ndarray:
    """Per-phoneme normalised log F0 for the variance adaptor from the source contour, moved to the
    ``target`` register when both are known; a symbol without frames gets 0, as in training."""
    log_f0 = continuous_log_f0(np.asarray(f0, np.float32))
    if source is not None and target is not None:
        log_f0 = transfer_log_f0(log_f0, source, target)
    pitch = normalised_pitch(phoneme_average(log_f0, durations))
    return np.where(np.asarray(durations) > 0, pitch, 0.0).astype(np.float32)


def time_normalised_correlation(a: np.ndarray, b: np.ndarray, points: int = 200) -> float:
    """Pearson correlation of two per-frame contours after stretching both to ``points`` samples."""
    grid = np.linspace(0, 1, points)
    x = np.interp(grid, np.linspace(0, 1, len(a)), a)
    y = np.interp(grid, np.linspace(0, 1, len(b)), b)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


# ------------------------------------------------------------------------------- long sources
#: A piece is cut at the first pause of at least MIN_PAUSE_SECONDS once it is this long ...
TARGET_SEGMENT_SECONDS = 8.0
#: ... and at the next word boundary, pause or not, once it is this long.
MAX_SEGMENT_SECONDS = 20.0
MIN_PAUSE_SECONDS = 0.2

TimedWord = tuple[str, float, float]  # (word, start s, end s)


@dataclass(frozen=True)
class Segment:
    """A piece of the source: samples ``[start, end)`` and the words said in it."""

    start: int
    end: int
    text: str


def split_at_pauses(words: Sequence[TimedWord], n_samples: int, sample_rate: int = SIGNAL.sample_rate,
                    ) -> list[Segment]:
    """Cut a recording at pauses between ``words`` into pieces of about 8-20 s covering every sample.

    >>> words = [("a", 0.1, 0.5), ("b", 9.0, 9.4), ("c", 10.0, 10.5)]
    >>> [(s.start, s.end, s.text) for s in split_at_pauses(words, 11 * 16000)]
    [(0, 155200, 'a b'), (155200, 176000, 'c')]
    """
    segments: list[Segment] = []
    start_sample, current = 0, []
    for index, word in enumerate(words):
        current.append(word[0].strip())
        if index + 1 == len(words):
            break
        gap_start, gap_end = word[2], words[index + 1][1]
        length = gap_start - start_sample / sample_rate
        pause = gap_end - gap_start
        if (length >= TARGET_SEGMENT_SECONDS and pause >= MIN_PAUSE_SECONDS) or length >= MAX_SEGMENT_SECONDS:
            cut = int(round((gap_start + gap_end) / 2 * sample_rate))
            cut = min(max(cut, start_sample + 1), n_samples - 1)
            segments.append(Segment(start_sample, cut, " ".join(current)))
            start_sample, current = cut, []
    segments.append(Segment(start_sample, n_samples, " ".join(current)))
    return [segment for segment in segments if segment.text.strip()]


def time_text_words(text_words: Sequence[str], recognised: Sequence[TimedWord],
                    normalise=lambda word: word) -> list[TimedWord]:  # noqa: ANN001
    """Give each typed word the time of the recognised word it matches; unmatched ones take their
    neighbours' times.

    >>> time_text_words(["hello", "big", "world"], [("hello", 0.0, 0.5), ("world", 0.9, 1.3)])
    [('hello', 0.0, 0.5), ('big', 0.5, 0.5), ('world', 0.9, 1.3)]
    """
    a = [normalise(word) for word in text_words]
    b = [normalise(word[0]) for word in recognised]
    cost = np.zeros((len(a) + 1, len(b) + 1), np.int64)
    cost[:, 0] = np.arange(len(a) + 1)
    cost[0, :] = np.arange(len(b) + 1)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (a[i - 1] != b[j - 1]))
    matched: dict[int, int] = {}
    i, j = len(a), len(b)
    while i > 0 and j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + (a[i - 1] != b[j - 1]):
            matched[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    timed: list[TimedWord] = []
    end = recognised[0][1] if recognised else 0.0
    for index, word in enumerate(text_words):
        if index in matched:
            _, start, end = recognised[matched[index]]
            timed.append((word, start, end))
        else:
            timed.append((word, end, end))
    return timed


# ------------------------------------------------------------------------------------ one piece
@dataclass
class ConvertedSegment:

    text: str
    mel: np.ndarray  # (80, T) the target's speech, T = the source piece's frames
    alignment: np.ndarray  # (T, S) the phoneme-to-frame path taken from the source
    durations: np.ndarray  # (S,)
    pitch: np.ndarray | None  # (S,) normalised log F0 given to the pitch input (None: no pitch input)


def convert_segment(synthesizer, wav: np.ndarray, text: str, source_embedding: np.ndarray,  # noqa: ANN001
                    target_embedding: np.ndarray, *, source_register: F0Register | None = None,
                    target_register: F0Register | None = None, prosody: Prosody = Prosody(),
                    generator: torch.Generator | None = None, check_words: bool = True) -> ConvertedSegment:
    """Speak ``text`` in the target voice with the timing (and pitch contour) of ``wav`` (16 kHz, peak
    normalised). ``check_words`` looks for unsaid words; ``prosody`` still applies. :class:`ConversionError`
    when the text is empty, does not fit, or has words the recording does not say."""
    from utils.mel import melspectrogram
    model: DurationSynthesizerModel = synthesizer.model
    item = synthesizer.front_end([text])[0]
    if len(item.ids) < 3:
        raise ConversionError(f"The words {text[:40]!r} have nothing the synthesizer can speak.")
    mel = melspectrogram(np.asarray(wav, np.float32), synthesizer.hparams)
    alignment = align_source(model, item.ids, mel, source_embedding)
    space = synthesizer.table._ids.get(" ")
    words = item.cleaned.split()
    spans = word_symbol_spans(item.ids, space) if space is not None else []
    if check_words and len(spans) != len(words) and len(spans) > 1:
        # espeak-ng joins some words ("from the" → "fɹʌmðə"): name each of its words by the text's words
        alone = synthesizer.front_end.phonemizer.phonemize(words)
        words = group_words(words, [len(phonemes) for phonemes in alone], [end - start for start, end in spans])
    missing = unaligned_words(model, item.ids, mel, source_embedding, spans, words) if check_words else []
    if missing:
        shown = ", ".join(f"'{word}'" for word in missing[:5]) + (" ..." if len(missing) > 5 else "")
        if len(missing) >= MAX_MISSING_WORDS or len(missing) > len(words) / 2:
            raise ConversionError(f"The words do not match the source recording ({len(missing)} or more of "
                                  f"{len(words)} cannot be aligned: {shown}); give the words it says.")
        raise ConversionError(f"Cannot align these words to the source recording: {shown}; check that the "
                              "recording says them, or give the words it says.")
    device = next(model.parameters()).device
    ids = torch.from_numpy(alignment.ids)[None].to(device)
    durations = torch.from_numpy(scale_durations(alignment.durations, prosody.speaking_rate))[None].to(device)
    override = pitch = None
    if model.hparams.variance_adaptor:
        f0 = frame_f0(wav, mel.shape[1])
        source_register = source_register or F0Register.from_f0(f0)
        if target_register is None:
            target_register = predicted_register(model, alignment.ids, target_embedding)
        pitch = phoneme_pitch(f0, alignment.durations, source_register, target_register)
        override = torch.full((1, 2, len(pitch)), float("nan"), device=device)
        override[0, 0] = torch.from_numpy(pitch).to(device)
    elif prosody.pitch_shift != 0:
        raise ConversionError(f"The synthesizer '{synthesizer.path}' has no pitch control (it was trained without "
                              "the variance adaptor); convert without a pitch shift.")
    speaker = torch.from_numpy(np.asarray(target_embedding, np.float32))[None].to(device)
    output = model.infer(ids, torch.tensor([len(alignment.ids)], device=device), speaker, prosody, generator,
                         durations=durations, variance_override=override,
                         flow_temperature=CONVERSION_FLOW_TEMPERATURE)
    n_frames = int(durations.sum())
    out_mel = output.mel[0, :, :n_frames].float().cpu().numpy()
    require_finite(out_mel, "synthesizer", "mel spectrograms", synthesizer.path)
    path = output.path[0, :, :n_frames].T.cpu().numpy()
    return ConvertedSegment(text, np.ascontiguousarray(out_mel, np.float32), np.ascontiguousarray(path, np.float32),
                            alignment.durations, pitch)


def scale_durations(durations: np.ndarray, speaking_rate: float) -> np.ndarray:
    """Frames per symbol ÷ ``speaking_rate``, with the total rounded once.

    >>> scale_durations(np.array([3, 3, 3]), 2.0).tolist()
    [2, 1, 1]
    """
    if speaking_rate == 1.0:
        return np.asarray(durations, np.int64)
    ends = np.round(np.cumsum(np.asarray(durations, np.float64)) / speaking_rate).astype(np.int64)
    return np.diff(np.concatenate([[0], ends]))


def predicted_register(model: DurationSynthesizerModel, ids: np.ndarray, embedding: np.ndarray) -> F0Register | None:
    """The register the variance adaptor predicts for a voice on these phonemes."""
    device = next(model.parameters()).device
    with torch.no_grad():
        ids_t = torch.from_numpy(np.asarray(ids, np.int64))[None].to(device)
        speaker = torch.from_numpy(np.asarray(embedding, np.float32))[None].to(device)
        states, _, _, mask = model.encode(ids_t, torch.tensor([len(ids)], device=device), speaker)
        pitch = model.predict_variance(states, speaker, mask)[0, 0].float().cpu().numpy()
    pitch = pitch[np.asarray(ids) != 0] * LOG_F0_SCALE + LOG_F0_CENTRE
    if len(pitch) < 2:
        return None
    return F0Register(float(pitch.mean()), max(float(pitch.std()), MIN_SPREAD))
