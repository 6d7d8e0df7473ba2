"""The toolbox's state and work, without any Qt: the window, the CLI and the tests all drive this.

Every method is blocking; the Qt view runs them on worker threads (docs/toolbox.md).

>>> controller = ToolboxController(models_dir="saved_models", device="cpu")  # doctest: +SKIP
>>> reference = controller.load_file("me.wav")  # doctest: +SKIP
>>> output = controller.synthesize_and_vocode("Hello there.", [reference.name], vocoder="griffinlim")  # doctest: +SKIP
>>> round(output.similarity, 2)  # doctest: +SKIP
0.71
"""

from __future__ import annotations

import itertools
import math
import random
import re
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pipeline import (
    AudioCallback,
    ClonePipeline,
    CloneResult,
    ModelPaths,
    Reference,
    SentenceMels,
    StreamedSentence,
    VoiceEmbedding,
    load_reference,
    split_text,
    vocoder_kind,
)
from utils.mel import melspectrogram
from synthesizer.hparams import SynthesizerHParams
from utils.audio_io import CLIPPING_LEVEL, AudioError, save_audio
from utils.checkpoints import inspect_checkpoint
from utils.default_models import resolve_model, shipped_model_path
from utils.signal_contract import SAMPLE_RATE
from vocoder import registry as vocoders

LogCallback = Callable[[str], None]
# What the window's progress bar shows: the fraction done in [0, 1] and what is happening. The stages
# below report counts (utils.progress.ProgressCallback); the controller turns them into this.
StatusCallback = Callable[[float, str], None]

MAX_OUTPUTS = 20
MIN_UMAP_POINTS = 4
GRIFFIN_LIM = "Griffin-Lim"
SHIPPED_LABEL = "shipped"  # selector label of this project's offline models (saved_models/shipped)
MODEL_KINDS = ("encoder", "synthesizer", "vocoder")
# A reference is called noisy when its quiet frames are within this many dB of its loud ones.
NOISY_DYNAMIC_RANGE_DB = 15.0
# A Tacotron makes about 6 frames (12.5 ms each) per character of English: the estimate that the
# decoder-step progress of a sentence is measured against (it never claims more than 95 %).
FRAMES_PER_CHARACTER = 6.0
# UMAP, numba and pynndescent comment on small inputs and threads; silenced once here rather than with
# warnings.catch_warnings around the projection, which is process-wide and would swallow (or leak into)
# the warnings a generation running beside it collects for the log.
for _module in ("umap", "numba", "pynndescent", "sklearn"):
    warnings.filterwarnings("ignore", module=_module)


class Cancelled(Exception):
    """Raised from a progress or audio callback to stop a job between two steps; re-raised with what
    was made so far in ``partial`` where it can be kept."""

    def __init__(self, message: str = "Cancelled.", partial: object = None) -> None:
        super().__init__(message)
        self.partial = partial


def format_seconds(seconds: float) -> str:
    """A short duration for an ETA.

    >>> format_seconds(4.2), format_seconds(75), format_seconds(3700)
    ('4 s', '1 min 15 s', '1 h 1 min')
    """
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class Eta:
    """Time left from the fraction done so far (``""`` until there is enough to go on)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def text(self, fraction: float) -> str:
        elapsed = time.perf_counter() - self.start
        if fraction < 0.03 or elapsed < 1.0 or fraction >= 1.0:
            return ""
        return f", about {format_seconds(elapsed * (1 - fraction) / fraction)} left"


def preview(text: str, length: int = 30) -> str:
    """The start of ``text`` for a message.

    >>> preview("Hello there, this is a rather long sentence.", 12)
    'Hello there…'
    """
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


# "Text 0 ('Hello…') reached the …": the synthesizers number the texts of one call, which is always 0
# when the toolbox synthesizes sentence by sentence; the real sentence replaces it.
_TEXT_PREFIX = re.compile(r"^Text (\d+) \(.*?\) (?=[a-z])")


def sentence_message(message: str, sentences: Sequence[str], index: int | None = None) -> str:
    """Say which sentence a warning belongs to; ``index`` ``None`` takes the synthesizer's number.

    >>> sentence_message("Text 0 ('Hi.') reached the limit.", ["Hello.", "Hi."], 1)
    'Sentence 2/2 ("Hi."): reached the limit.'
    >>> sentence_message("Dropped 1 character(s): '~'.", ["A~b."], 0)
    'Sentence 1/1 ("A~b."): Dropped 1 character(s): \\'~\\'.'
    """
    match = _TEXT_PREFIX.match(message)
    if index is None and match is not None and int(match.group(1)) < len(sentences):
        index = int(match.group(1))
    if index is None:
        return message
    rest = message[match.end():] if match is not None else message
    return f'Sentence {index + 1}/{len(sentences)} ("{preview(sentences[index])}"): {rest}'


def text_slug(text: str, words: int = 4, length: int = 28) -> str:
    """A few words of ``text`` for an output's name.

    >>> text_slug("Hello there! How are you today, my friend?")
    'hello_there_how_are'
    >>> text_slug("😀")
    ''
    """
    slug = ""
    for word in re.findall(r"[0-9a-z]+", text.lower())[:words]:
        if slug and len(slug) + 1 + len(word) > length:
            break  # whole words only
        slug = f"{slug}_{word}" if slug else word[:length]
    return slug


@dataclass
class HistoryUtterance:
    """An utterance in the toolbox's history: loaded, recorded or generated."""

    name: str
    speaker: str
    wav: np.ndarray  # (samples,) float32 at 16 kHz, peak-normalised for display and playback
    mel: np.ndarray  # (80, T) synthesizer-style mel, for display
    embedding: np.ndarray  # (256,) unit norm
    partial_embeddings: np.ndarray  # (n_partials, 256)
    speech_seconds: float
    generated: bool = False
    source: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.wav) / SAMPLE_RATE


@dataclass(frozen=True)
class ModelChoice:
    """One entry of a model selector: a checkpoint file, or Griffin-Lim (no file)."""

    kind: str
    label: str
    path: Path | None


@dataclass
class SelectedVoice(VoiceEmbedding):
    """The voice built from the selected references, and whose it is (a speaker, or "a+b")."""

    speaker: str = "unknown"


@dataclass
class GeneratedOutput:
    """A generated utterance with everything needed to show, replay, export and judge it."""

    name: str
    speaker: str
    wav: np.ndarray
    synthesis: SentenceMels
    vocoder: str
    seed: int | None
    similarity: float | None  # cosine between the output's and the voice's embeddings
    utterance: HistoryUtterance | None  # the output as an embedded utterance (None when too short to embed)
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)  # what the log said about it, sentence by sentence
    complete: bool = True  # False: the job was cancelled and this is what had been made

    @property
    def duration(self) -> float:
        return len(self.wav) / SAMPLE_RATE


@dataclass
class Projection:
    """2-D UMAP coordinates of every embedded utterance."""

    points: np.ndarray  # (N, 2)
    names: list[str]
    speakers: list[str]
    generated: list[bool]


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two embeddings (they are unit norm, but be safe with averages)."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def reference_quality_warnings(wav: np.ndarray, name: str) -> list[str]:
    """Plain-language warnings for clipped or very noisy references."""
    notes = []
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    if peak > 0 and np.mean(np.abs(wav) >= CLIPPING_LEVEL * peak) > 0.01 and peak >= 0.99:
        notes.append(f"'{name}' is clipped: the voice may be copied badly.")
    frame = SAMPLE_RATE // 50  # 20 ms
    n_frames = len(wav) // frame
    if n_frames >= 10:
        rms = np.sqrt(np.mean(wav[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1) + 1e-12)
        dynamic_range = 20 * np.log10(np.percentile(rms, 95) / np.percentile(rms, 10))
        if dynamic_range < NOISY_DYNAMIC_RANGE_DB:
            notes.append(f"'{name}' sounds very noisy ({dynamic_range:.0f} dB between speech and pauses).")
    return notes


def align_points(points: np.ndarray, names: Sequence[str], previous: dict[str, np.ndarray]) -> np.ndarray:
    """Map ``points`` onto ``previous`` (name → point) by the similarity transform (rotation or
    mirror, uniform scale, shift) that best fits the names both have; unchanged below 3 of them.

    >>> old = {"a": np.array([0.0, 0.0]), "b": np.array([1.0, 0.0]), "c": np.array([0.0, 1.0])}
    >>> new = np.array([[5.0, 5.0], [5.0, 7.0], [3.0, 5.0], [9.0, 9.0]])  # rotated by 90°, scaled 2×
    >>> (align_points(new, ["a", "b", "c", "d"], old).round(6) + 0.0).tolist()
    [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, -2.0]]
    """
    common = [i for i, name in enumerate(names) if name in previous]
    if len(common) < 3:
        return points
    source = points[common].astype(np.float64)
    target = np.stack([previous[names[i]] for i in common]).astype(np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    a, b = source - source_mean, target - target_mean
    if not np.any(a) or not np.any(b):
        return points
    u, singular, vt = np.linalg.svd(a.T @ b)
    rotation = u @ vt
    scale = singular.sum() / (a ** 2).sum()
    return ((points - source_mean) @ rotation * scale + target_mean).astype(np.float32)


class ToolboxController:
    """Owns the models, the utterances and the generated outputs.

    ``models_dir`` is scanned two levels deep (``models_dir/default`` preferred), then ``shipped_dir``;
    ``exact_vocoder`` uses RTVC's exact WaveRNN generation instead of the ~4× faster one;
    ``models_url``/``models_source`` are where :meth:`download_default_models` fetches from (``None``:
    the environment variables, then the default URL)."""

    def __init__(self, models_dir: str | Path = "saved_models", device: str | None = None, seed: int | None = None,
                 log: LogCallback | None = None, exact_vocoder: bool = False,
                 shipped_dir: str | Path | None = "", models_url: str | None = None,
                 models_source: str | Path | None = None) -> None:
        self.models_dir = Path(models_dir)
        self.models_url = models_url
        self.models_source = models_source
        # "" means the usual place ($SV2TTS_SHIPPED_MODELS_DIR or saved_models/shipped); None: none.
        self.shipped_dir = shipped_dir
        self.exact_vocoder = exact_vocoder
        self.device = device
        self.seed = seed
        self._log_listeners: list[LogCallback] = [log] if log else []
        self.history: list[HistoryUtterance] = []  # newest first
        self.projection_names: list[str] = []  # utterances shown in the UMAP, in order of arrival
        self.outputs: list[GeneratedOutput] = []  # newest first
        self.current_synthesis: SentenceMels | None = None
        self.last_source_mel: np.ndarray | None = None  # (80, T) of the last conversion's source
        self.current_voice: SelectedVoice | None = None
        self._lock = threading.RLock()
        self._counter = itertools.count(1)
        self.model_choices: dict[str, list[ModelChoice]] = {}
        self.selected: dict[str, ModelChoice | None] = {kind: None for kind in MODEL_KINDS}
        self._pipeline: ClonePipeline | None = None
        self._last_projection: dict[str, np.ndarray] = {}  # name → point of the last UMAP fit
        self.scan_models()

    # ----------------------------------------------------------------------------------------- log
    def add_log_listener(self, listener: LogCallback) -> None:
        self._log_listeners.append(listener)

    def log(self, message: str) -> None:
        for listener in self._log_listeners:
            listener(message)

    def _log_warnings(self, notes: list[str], new: Sequence[str],
                      describe: Callable[[str], str] = lambda message: message) -> None:
        """Log the warnings a pipeline result carries, each passed through ``describe`` (which says
        the sentence it belongs to), and add them to ``notes``."""
        for note in map(describe, new):
            if note not in notes:
                notes.append(note)
                self.log(f"Warning: {note}")

    # -------------------------------------------------------------------------------------- models
    def scan_models(self) -> dict[str, list[ModelChoice]]:
        """List the compatible checkpoints under ``models_dir`` and the shipped ones, keeping the current
        selection when still there, else :func:`utils.default_models.resolve_model`'s; Griffin-Lim ends
        the vocoder list."""
        preferred = {kind: resolve_model(kind, self.models_dir, shipped_dir=self.shipped_dir) for kind in MODEL_KINDS}
        if preferred["encoder"].source == "installed":
            self.log(f"Installed the default encoder at '{preferred['encoder'].path}' (from the resemblyzer package).")
        found: dict[str, list[ModelChoice]] = {kind: [] for kind in MODEL_KINDS}
        if self.models_dir.is_dir():
            candidates = sorted(set(self.models_dir.glob("*.pt")) | set(self.models_dir.glob("*/*.pt")))
            for path in candidates:
                kind = inspect_checkpoint(path)
                if kind is None:
                    continue
                relative = path.relative_to(self.models_dir)
                label = relative.parent.as_posix() if relative.stem == kind else relative.with_suffix("").as_posix()
                found[kind].append(ModelChoice(kind, label if label != "." else relative.stem, path))
        # The project's offline models are offered whatever models_dir is, so a clone always works.
        for kind in MODEL_KINDS:
            shipped = shipped_model_path(kind, self.shipped_dir)
            listed = {choice.path.resolve() for choice in found[kind] if choice.path is not None}
            if shipped is not None and shipped.resolve() not in listed and inspect_checkpoint(shipped) == kind:
                found[kind].append(ModelChoice(kind, SHIPPED_LABEL, shipped))
            # The resolver's choice first, then the other shipped file, then the rest by name.
            found[kind].sort(key=lambda choice, _kind=kind: (choice.path != preferred[_kind].path,
                                                             choice.label != SHIPPED_LABEL, choice.label))
        found["vocoder"].append(ModelChoice("vocoder", GRIFFIN_LIM, None))
        self.model_choices = found
        for kind in MODEL_KINDS:
            current = self.selected.get(kind)
            if current not in found[kind]:
                self.selected[kind] = found[kind][0] if found[kind] else None
        self._pipeline = None
        return found

    def select_model(self, kind: str, label: str) -> ModelChoice:
        """Choose a model by its selector label; the model is loaded when first needed."""
        for choice in self.model_choices.get(kind, []):
            if choice.label == label:
                with self._lock:
                    self.selected[kind] = choice
                    self._pipeline = None
                return choice
        raise ValueError(f"No {kind} called '{label}' under '{self.models_dir}'.")

    @property
    def pipeline(self) -> ClonePipeline:
        with self._lock:
            if self._pipeline is None:
                def path(kind: str) -> Path | None:
                    choice = self.selected.get(kind)
                    return choice.path if choice is not None else None

                self._pipeline = ClonePipeline(
                    ModelPaths(path("encoder"), path("synthesizer"), path("vocoder")), self.device,
                    missing_model_help="In the toolbox, use 'Download default models' or pick another model.",
                    exact_vocoder=self.exact_vocoder,
                )
            return self._pipeline

    @property
    def vocoder_name(self) -> str:
        """``"griffinlim"``, or the kind of the selected vocoder file (``"wavernn"`` or ``"istft"``)."""
        choice = self.selected.get("vocoder")
        return vocoder_kind(choice.path if choice is not None else None)

    def has_synthesizer(self) -> bool:
        return self.selected.get("synthesizer") is not None

    def load_models(self, progress: StatusCallback | None = None) -> None:
        """Load the selected encoder (and synthesizer/vocoder when present) now, e.g. at start-up."""
        with self._lock:
            pipeline = self.pipeline
            steps = [("encoder", lambda: pipeline.encoder)]
            if self.has_synthesizer():
                steps.append(("synthesizer", lambda: pipeline.synthesizer))
            if vocoders.needs_file(self.vocoder_name):
                steps.append(("vocoder", lambda: pipeline.neural_vocoder))
            for index, (kind, load) in enumerate(steps):
                if progress:
                    progress(index / len(steps), f"Loading the {kind}…")
                start = time.perf_counter()
                load()
                self.log(f"Loaded the {kind} '{self.selected[kind].label}' in {time.perf_counter() - start:.1f} s.")
            if progress:
                progress(1.0, "Models loaded.")

    def download_default_models(self, names: Sequence[str] = ("synthesizer", "vocoder"),
                                progress: StatusCallback | None = None) -> None:
        """Fetch RTVC's pretrained models into ``models_dir/default`` (see :mod:`utils.default_models`)."""
        from utils.default_models import ensure_default_models

        def report(done: int, total: int) -> None:
            if progress and total:
                progress(done / total, f"Downloading: {done / 2**20:.0f} of {total / 2**20:.0f} MB")

        try:
            ensure_default_models(self.models_dir, names, base_url=self.models_url, source_dir=self.models_source,
                                  show_progress=False, progress_callback=report)
        except Cancelled:
            self.log("Download cancelled: what arrived is kept as a .part file, and the next download resumes it.")
            raise
        finally:
            self.scan_models()  # whatever was completed (all files, or some of them) is offered at once
        self.log(f"Default models ready in '{self.models_dir / 'default'}'.")

    def existing_default_files(self, names: Sequence[str] = ("synthesizer", "vocoder")) -> list[Path]:
        """The files in ``models_dir/default`` that a download of ``names`` would replace."""
        return [path for path in (self.models_dir / "default" / f"{name}.pt" for name in names) if path.exists()]

    # ---------------------------------------------------------------------------------- utterances
    def find(self, name: str) -> HistoryUtterance:
        for utterance in self.history:
            if utterance.name == name:
                return utterance
        raise KeyError(f"No utterance called '{name}'.")

    def find_source(self, path: str | Path) -> HistoryUtterance | None:
        """The history's utterance loaded from ``path``, if any."""
        try:
            wanted = Path(path).resolve()
        except OSError:
            return None
        for utterance in self.history:
            if utterance.source is not None and utterance.source.resolve() == wanted:
                return utterance
        return None

    def load_file(self, path: str | Path, speaker: str | None = None, name: str | None = None) -> HistoryUtterance:
        """Load any audio file as a reference (speaker: its folder, as RTVC); a file already in the history
        is returned instead of loaded again."""
        path = Path(path)
        existing = self.find_source(path)
        if existing is not None:
            self.log(f"'{existing.name}' is already in the history: selected it instead of loading it again.")
            return existing
        reference = load_reference(path, name)
        return self.register(reference, speaker or path.parent.name or "unknown")

    def load_files(self, paths: Sequence[str | Path], progress: StatusCallback | None = None) -> list[HistoryUtterance]:
        """Load several files (a drop on the window); a cancel keeps the ones already loaded."""
        loaded: list[HistoryUtterance] = []
        for index, path in enumerate(paths):
            if progress:
                try:
                    progress(index / len(paths), f"Loading {index + 1}/{len(paths)}: {Path(path).name}")
                except Cancelled as cancelled:
                    cancelled.partial = loaded
                    raise
            loaded.append(self.load_file(path))
        return loaded

    def remove(self, names: Sequence[str]) -> None:
        """Forget utterances (history and projection); generated outputs stay in the outputs list."""
        gone = set(names)
        self.history = [u for u in self.history if u.name not in gone]
        self.projection_names = [n for n in self.projection_names if n not in gone]
        for output in self.outputs:
            if output.utterance is not None and output.utterance.name in gone:
                output.utterance = None
        self.log(f"Removed {len(gone)} utterance{'s' if len(gone) != 1 else ''} from the history.")

    def rename(self, name: str, new_name: str) -> HistoryUtterance:
        """Give an utterance (and its output, for a generated one) another name."""
        new_name = " ".join(new_name.split())
        utterance = self.find(name)
        if not new_name:
            raise ValueError("A name cannot be empty.")
        if new_name != name and any(u.name == new_name for u in self.history):
            raise ValueError(f"'{new_name}' is already in the history: choose another name.")
        utterance.name = new_name
        self.projection_names = [new_name if n == name else n for n in self.projection_names]
        for output in self.outputs:
            if output.name == name:
                output.name = new_name
        if self.current_voice is not None:
            self.current_voice.names = [new_name if n == name else n for n in self.current_voice.names]
        self.log(f"Renamed '{name}' to '{new_name}'.")
        return utterance

    def load_dataset_utterance(self, utterance) -> HistoryUtterance:  # noqa: ANN001 (toolbox.datasets.DatasetUtterance)
        return self.load_file(utterance.path, speaker=utterance.speaker, name=utterance.name)

    def add_recording(self, wav: np.ndarray, sample_rate: int, speaker: str = "user01") -> HistoryUtterance:
        from utils.audio_io import check_waveform

        wav = check_waveform(np.asarray(wav, dtype=np.float32), "The recording", sample_rate, min_seconds=0.3)
        return self.register(load_reference((wav, sample_rate), f"{speaker}_rec_{next(self._counter):05d}"), speaker)

    def register(self, reference: Reference, speaker: str, *, generated: bool = False) -> HistoryUtterance:
        """Embed a loaded reference and add it to the history (top) and to the projection."""
        name = reference.name
        if any(u.name == name for u in self.history):
            name = reference.name = f"{name} ({next(self._counter)})"
        wav = reference.wav
        peak = float(np.max(np.abs(wav))) if wav.size else 0.0
        display = (wav / peak * 0.9).astype(np.float32) if peak > 0 else wav  # RTVC's 0.9 peak on load
        with self._lock:
            embedded = self.pipeline.embed_reference(reference)
        # Warnings about the file (a low sample rate, clipping) go to the log and stay with the utterance.
        notes: list[str] = []
        self._log_warnings(notes, embedded.warnings + ([] if generated else reference_quality_warnings(wav, name)))
        utterance = HistoryUtterance(
            name=name, speaker=speaker, wav=display, mel=melspectrogram(display, SynthesizerHParams()),
            embedding=embedded.embedding, partial_embeddings=embedded.details.partial_embeddings,
            speech_seconds=embedded.speech_seconds, generated=generated, source=reference.source, warnings=notes,
        )
        self.history.insert(0, utterance)
        self.projection_names.append(name)
        self.log(f"Loaded '{name}' ({utterance.duration:.1f} s, {utterance.speech_seconds:.1f} s of speech).")
        return utterance

    def clear_projection(self) -> None:
        """Empty the UMAP plot (the history keeps its utterances)."""
        self.projection_names.clear()
        self._last_projection = {}

    def voice(self, names: Sequence[str], *, remember: bool = True) -> SelectedVoice:
        """Average the chosen references' embeddings into one voice, with advice on its quality;
        ``remember=False`` only describes it, leaving the voice outputs are compared with unchanged."""
        if not names:
            raise ValueError("Select at least one reference utterance first (load, browse or record one).")
        utterances = [self.find(name) for name in names]
        speakers = sorted({u.speaker for u in utterances})
        voice = SelectedVoice.average([u.embedding for u in utterances], [u.name for u in utterances],
                              sum(u.speech_seconds for u in utterances), [n for u in utterances for n in u.warnings],
                              speaker=speakers[0] if len(speakers) == 1 else "+".join(speakers))
        if remember:
            self.current_voice = voice
        return voice

    # ---------------------------------------------------------------------------------- generation
    def _seed(self, seed: int | None) -> int | None:
        return self.seed if seed is None else seed

    def synthesize(self, text: str, reference_names: Sequence[str], *, seed: int | None = None,
                   progress: StatusCallback | None = None, speaking_rate: float = 1.0,
                   pitch_shift: float = 0.0, energy: float = 1.0) -> SentenceMels:
        """Text → mel spectrograms (one per line and sentence) in the voice of the references.
        ``progress`` may raise :class:`Cancelled`: the previous spectrograms then stay current."""
        voice = self.voice(reference_names)
        notes: list[str] = []
        sentences, text_notes = split_text(text)
        self._log_warnings(notes, text_notes)
        eta = Eta()
        estimate = max(FRAMES_PER_CHARACTER * sum(len(s) for s in sentences), 1.0)
        with self._lock:
            state = {"done": 0, "frames": 0.0}

            def report(done: int, total: int) -> None:
                state["done"] = done
                if progress:
                    fraction = done / total
                    progress(fraction, f"Synthesizing: {done}/{total} sentences{eta.text(fraction)}")

            def step(frame: int, *_rest: object) -> None:
                # All sentences of a batch are decoded together: the frames of the longest one,
                # against the estimate for the whole text, say how far the batch is.
                if progress:
                    fraction = min(frame / estimate * len(sentences) / max(len(sentences) - state["done"], 1), 0.95)
                    fraction = max(fraction, state["done"] / len(sentences))
                    progress(fraction, f"Synthesizing: {state['done']}/{len(sentences)} sentences, "
                                       f"decoder step {frame}{eta.text(fraction)}")

            synthesis = self.pipeline.synthesize(sentences, voice.embedding, seed=self._seed(seed),
                                                 progress_callback=report, speaking_rate=speaking_rate,
                                                 pitch_shift=pitch_shift, energy=energy,
                                                 step_callback=step if progress else None)
        self._log_warnings(notes, synthesis.warnings, lambda message: sentence_message(message, sentences))
        self.current_synthesis = synthesis
        self.log(f"Synthesized {len(sentences)} sentence(s) in {synthesis.seconds:.1f} s.")
        return synthesis

    def vocode(self, synthesis: SentenceMels | None = None, *, vocoder: str | None = None,
               seed: int | None = None, enhance: bool = False, progress: StatusCallback | None = None,
               on_chunk: AudioCallback | None = None) -> GeneratedOutput:
        """Mel spectrograms → audio, sentence by sentence, ``on_chunk`` getting each piece when playable.
        On :class:`Cancelled` the audio so far becomes an output (``complete=False``) in its ``partial``."""
        synthesis = synthesis or self.current_synthesis
        if synthesis is None:
            raise ValueError("Synthesize a spectrogram before vocoding it.")
        vocoder = vocoder or self.vocoder_name
        seed = self._seed(seed)
        total_frames = sum(mel.shape[1] for mel in synthesis.mels)
        pieces: list[np.ndarray] = []
        heard: list[np.ndarray] = []
        start = time.perf_counter()
        eta = Eta()
        done_frames = 0
        count = len(synthesis.mels)
        try:
            with self._lock:
                for index, mel in enumerate(synthesis.mels):
                    def report(step: int, total: int, *_rest: object, _offset: int = done_frames,
                               _frames: int = mel.shape[1], _index: int = index) -> None:
                        if progress and total:
                            fraction = (_offset + _frames * step / total) / max(total_frames, 1)
                            progress(fraction, f"Vocoding sentence {_index + 1}/{count}: "
                                               f"{100 * step / total:.0f} %{eta.text(fraction)}")

                    piece = self.pipeline.vocode_for_playback(
                        mel, vocoder, seed=None if seed is None else seed + index, enhance=enhance,
                        progress_callback=report, on_audio=self._keeping(heard, on_chunk))
                    pieces.append(piece)
                    done_frames += mel.shape[1]
        except Cancelled as cancelled:
            cancelled.partial = self._keep_partial(pieces, heard, synthesis, vocoder, seed,
                                                   {vocoder: time.perf_counter() - start})
            raise
        wav = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        seconds = time.perf_counter() - start
        if progress:
            progress(1.0, "Vocoded.")
        self.log(f"Vocoded {len(wav) / SAMPLE_RATE:.1f} s of audio with {vocoder} in {seconds:.1f} s "
                 f"({seconds / max(len(wav) / SAMPLE_RATE, 1e-9):.2f}× real time).")
        return self._finish_output(wav, synthesis, vocoder, seed, {"synthesizer": synthesis.seconds, vocoder: seconds})

    @staticmethod
    def _keeping(heard: list[np.ndarray], on_chunk: AudioCallback | None) -> AudioCallback | None:
        """``on_chunk``, also keeping a copy of each piece: what was played survives a cancel."""
        if on_chunk is None:
            return None

        def chunk(samples: np.ndarray) -> None:
            heard.append(np.array(samples, dtype=np.float32, copy=True))
            on_chunk(samples)

        return chunk

    def _keep_partial(self, pieces: list[np.ndarray], heard: list[np.ndarray], synthesis: SentenceMels,
                      vocoder: str, seed: int | None, timings: dict[str, float],
                      notes: Sequence[str] = ()) -> GeneratedOutput | None:
        """Turn the audio of a cancelled job into an output: the finished sentences, or everything
        already played when that is more (a sentence streamed in pieces)."""
        done = sum(len(piece) for piece in pieces)
        played = sum(len(piece) for piece in heard)
        wav = np.concatenate(heard if played > done else pieces) if max(done, played) else None
        if wav is None or not synthesis.mels:
            self.log("Cancelled before any audio was made.")
            return None
        output = self._finish_output(wav, synthesis, vocoder, seed, timings, notes, complete=False)
        self.log(f"Cancelled: kept the {output.duration:.1f} s made so far as '{output.name}'.")
        return output

    def synthesize_and_vocode(self, text: str, reference_names: Sequence[str], *, vocoder: str | None = None,
                              seed: int | None = None, enhance: bool = False, progress: StatusCallback | None = None,
                              on_chunk: AudioCallback | None = None, speaking_rate: float = 1.0,
                              pitch_shift: float = 0.0, energy: float = 1.0) -> GeneratedOutput:
        """Both stages, streamed sentence by sentence (:meth:`ClonePipeline.stream`) with an ETA; every
        warning is logged with its sentence. On :class:`Cancelled` the sentences made become an output
        (``complete=False``) in its ``partial``."""
        voice = self.voice(reference_names)
        notes: list[str] = []
        sentences, text_notes = split_text(text)
        self._log_warnings(notes, text_notes)
        seed = self._seed(seed)
        vocoder = vocoder or self.vocoder_name
        parts: list[StreamedSentence] = []
        made: list[SentenceMels] = []  # also the sentence being vocoded: a cancelled output keeps its mel
        heard: list[np.ndarray] = []
        count = len(sentences)
        synth_share = 1.0 - vocoders.kind_class(vocoder).time_share  # of a sentence's time
        eta = Eta()

        def tell(within: float, what: str) -> None:
            if progress:
                fraction = (len(parts) + within) / count
                progress(fraction, f"Sentence {len(parts) + 1}/{count}: {what}{eta.text(fraction)}")

        def step(frame: int, *_details: object) -> None:
            estimate = max(FRAMES_PER_CHARACTER * len(sentences[len(parts)]), 1.0)
            tell(synth_share * min(frame / estimate, 0.95), f"synthesizing (step {frame})")

        def report(done: int, total: int, *_details: object) -> None:
            if total:
                tell(synth_share + (1 - synth_share) * done / total, f"vocoding {100 * done / total:.0f} %")

        def synthesized(part: SentenceMels) -> None:
            made.append(part)
            tell(synth_share, "vocoding")

        result: CloneResult | None = None
        try:
            with self._lock:
                tell(0.0, "synthesizing")
                for item in self.pipeline.stream(voice.embedding, sentences, vocoder=vocoder, seed=seed,
                                                 enhance=enhance, step_callback=step if progress else None,
                                                 vocoder_progress=report, on_audio=self._keeping(heard, on_chunk),
                                                 on_synthesis=synthesized, speaking_rate=speaking_rate,
                                                 pitch_shift=pitch_shift, energy=energy):
                    if isinstance(item, CloneResult):
                        result = item
                        continue
                    self._log_warnings(notes, item.warnings,
                                       lambda message, _i=item.index: sentence_message(message, sentences, _i))
                    parts.append(item)
                    if len(parts) < count:
                        tell(0.0, "synthesizing")
        except Cancelled as cancelled:
            synthesis = SentenceMels(sentences[: len(made)], [m.mels[0] for m in made],
                                        [m.alignments[0] for m in made], sum(m.seconds for m in made),
                                        architecture=self.pipeline.synthesizer.architecture)
            cancelled.partial = self._keep_partial(
                [p.wav for p in parts], heard, synthesis, vocoder, seed,
                {"synthesizer": synthesis.seconds, vocoder: sum(p.vocoder_seconds for p in parts)}, notes)
            raise
        self.current_synthesis = result.synthesis
        if progress:
            progress(1.0, "Done.")
        self.log(f"Generated {result.duration:.1f} s of audio in {sum(result.timings.values()):.1f} s.")
        return self._finish_output(result.wav, result.synthesis, vocoder, seed, result.timings, notes)

    def convert(self, source_name: str, reference_names: Sequence[str], *, source_text: str | None = None,
                vocoder: str | None = None, seed: int | None = None, enhance: bool = False,
                progress: StatusCallback | None = None, speaking_rate: float = 1.0, pitch_shift: float = 0.0,
                energy: float = 1.0) -> GeneratedOutput:
        """Say the words of ``source_name`` with its timing in the voice of the references
        (:meth:`ClonePipeline.convert`); nothing is kept on :class:`Cancelled`. The source's mel becomes
        :attr:`last_source_mel`."""
        from synthesizer.duration.conversion import F0Register, f0_register

        source = self.find(source_name)
        if source.name in reference_names and len(reference_names) == 1:
            self.log("The source is also the voice: the output says it again in the same voice.")
        voice = self.voice(reference_names)
        seed = self._seed(seed)
        vocoder = vocoder or self.vocoder_name
        register = F0Register.combine([f0_register(self.find(name).wav) for name in reference_names])
        with self._lock:
            result = self.pipeline.convert(voice, load_reference((source.wav, SAMPLE_RATE), source.name),
                                           source_text=source_text, target_register=register, vocoder=vocoder,
                                           seed=seed, enhance=enhance, progress=progress,
                                           speaking_rate=speaking_rate, pitch_shift=pitch_shift, energy=energy)
        notes: list[str] = []
        self._log_warnings(notes, result.warnings)
        self.last_source_mel = result.source_mel
        self.current_synthesis = result.synthesis
        self.log(f"Converted '{source.name}' ({source.duration:.1f} s): \"{result.transcript}\"")
        return self._finish_output(result.wav, result.synthesis, vocoder, seed, result.timings, notes)

    def _finish_output(self, wav: np.ndarray, synthesis: SentenceMels, vocoder: str, seed: int | None,
                       timings: dict[str, float], notes: Sequence[str] = (), *,
                       complete: bool = True) -> GeneratedOutput:
        """Embed the output, measure its similarity to the voice, keep it in the histories."""
        voice = self.current_voice
        speaker = voice.speaker if voice else "unknown"
        slug = text_slug(" ".join(synthesis.sentences))
        # The number keeps names unique; the first words say which text it is.
        name = f"{speaker}_gen_{next(self._counter):03d}" + (f"_{slug}" if slug else "")
        utterance, similarity = None, None
        try:
            utterance = self.register(load_reference((wav, SAMPLE_RATE), name), speaker, generated=True)
            if voice is not None:
                similarity = cosine_similarity(utterance.embedding, voice.embedding)
                self.log(f"Similarity of the output to the voice: {similarity:.2f}.")
        except AudioError as error:
            self.log(f"The output could not be embedded for the similarity meter: {error}")
        output = GeneratedOutput(name, speaker, wav, synthesis, vocoder, seed, similarity, utterance, timings,
                                 list(notes), complete)
        self.outputs.insert(0, output)
        del self.outputs[MAX_OUTPUTS:]
        return output

    def export(self, output: GeneratedOutput, path: str | Path) -> Path:
        """Write a generated output as WAV or FLAC (``.wav`` is added when the name has no suffix)."""
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(".wav")
        save_audio(path, output.wav, SAMPLE_RATE)
        self.log(f"Exported '{output.name}' to '{path}'.")
        return path

    # ----------------------------------------------------------------------------------- analysis
    def projection(self, seed: int = 0) -> Projection | None:
        """UMAP of every projected utterance's embedding, fitted onto the previous one (Procrustes) so
        points stay put; ``None`` below :data:`MIN_UMAP_POINTS`."""
        utterances = {u.name: u for u in self.history}
        names = [name for name in self.projection_names if name in utterances]
        if len(names) < MIN_UMAP_POINTS:
            return None
        embeddings = np.stack([utterances[name].embedding for name in names])
        import umap

        reducer = umap.UMAP(
            n_neighbors=max(2, int(math.ceil(math.sqrt(len(names))))), metric="cosine",
            init="random" if len(names) < 10 else "spectral", random_state=seed, n_jobs=1,
        )
        points = np.asarray(reducer.fit_transform(embeddings), dtype=np.float32)
        points = align_points(points, names, self._last_projection)
        self._last_projection = dict(zip(names, points))
        return Projection(points, names, [utterances[n].speaker for n in names],
                          [utterances[n].generated for n in names])

    def random_seed(self) -> int:
        return random.randrange(0, 2**31 - 1)
