"""The voice-cloning pipeline: references → voice embedding → mel spectrograms → waveform.

This is the application layer: the CLI, the toolbox controller and the benchmarks call it and nothing
below it. It decides which checkpoint each model comes from (:func:`resolve_models`), loads and embeds
references (:func:`load_reference`, :meth:`ClonePipeline.embed_reference`), and returns what the
models had to say as data (the ``warnings`` of every result). :class:`ClonePipeline` composes the three
models, loads each one lazily on first use, on one device. Nothing is global: two pipelines with
different models can live side by side.

Examples
--------
>>> pipeline = ClonePipeline(ModelPaths.in_folder("saved_models/default"), device="cpu")  # doctest: +SKIP
>>> voice = pipeline.embed_references(["me.wav"])  # doctest: +SKIP
>>> result = pipeline.clone(voice, "Hello there.", vocoder="griffinlim", seed=1)  # doctest: +SKIP
>>> result.wav.shape, result.sample_rate  # doctest: +SKIP
((52000,), 16000)
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Literal, Sequence

import numpy as np
import torch

from encoder.audio import require_speech, trim_long_silences, webrtcvad_available
from encoder.inference import Encoder, UtteranceEmbedding, average_embeddings
from synthesizer import registry as synthesizers
from synthesizer.base import MelSynthesizer, check_energy, check_pitch_shift, check_speaking_rate
from synthesizer.text import prepare_utterances
from utils.audio_io import load_audio_with_rate, resample
from utils.default_models import ensure_default_models, resolve_model
from utils.errors import UserError
from utils.model_kinds import with_article
from utils.progress import ProgressCallback
from utils.signal_contract import SAMPLE_RATE
from vocoder import registry as vocoders
from vocoder.base import MelVocoder
from vocoder.registry import vocoder_kind  # noqa: F401 (re-exported: the toolbox asks the pipeline)

if TYPE_CHECKING:
    from synthesizer.duration.conversion import F0Register
    from utils.asr import Transcriber

VocoderName = Literal["wavernn", "istft", "griffinlim"]
AudioCallback = Callable[[np.ndarray], None]
# References shorter than this make a poor voice (GE2E was trained on 1.6 s windows of longer clips).
MIN_RECOMMENDED_SPEECH_SECONDS = 3.0
# Silence put between sentences when they are joined into one output.
SENTENCE_GAP_SECONDS = 0.15
OUTPUT_PEAK = 0.97


class MissingModelError(UserError, FileNotFoundError):
    """A model file the requested work needs is not there; the message says how to get it."""


@dataclass(frozen=True)
class ModelPaths:
    """Where the three checkpoints are; ``None`` means that stage is not available."""

    encoder: Path | None
    synthesizer: Path | None = None
    vocoder: Path | None = None

    @classmethod
    def in_folder(cls, folder: str | Path) -> "ModelPaths":
        """``folder/encoder.pt``, ``folder/synthesizer.pt``, ``folder/vocoder.pt`` (RTVC's layout)."""
        folder = Path(folder)
        return cls(folder / "encoder.pt", folder / "synthesizer.pt", folder / "vocoder.pt")


@dataclass
class ResolvedModels:
    """The checkpoints to use, the vocoder to run, and what the user should be told about the choice."""

    paths: ModelPaths
    vocoder: VocoderName
    notes: list[str] = field(default_factory=list)


def resolve_models(models_dir: str | Path, *, encoder: Path | None = None, synthesizer: Path | None = None,
                   vocoder: Path | None = None, vocoder_name: VocoderName | None = None, download: bool = False,
                   models_url: str | None = None, models_source: Path | None = None,
                   show_progress: bool = True) -> ResolvedModels:
    """Explicit files, else RTVC's downloaded ones, else this project's shipped offline ones.

    Each file comes from :func:`utils.default_models.resolve_model`. Without ``vocoder_name`` the
    vocoder is the kind its file holds, or Griffin-Lim (no file) when there is none. With
    ``download`` (or a mirror URL or source folder) RTVC's missing synthesizer and WaveRNN vocoder
    are fetched into ``models_dir/default`` first.
    """
    download = download or bool(models_url or models_source)
    notes: list[str] = []
    chosen = {"synthesizer": resolve_model("synthesizer", models_dir, synthesizer),
              "vocoder": resolve_model("vocoder", models_dir, vocoder)}
    if vocoder_name is None:  # a neural vocoder whenever one can be had, else the model-free Griffin-Lim
        if chosen["vocoder"].source != "missing" or not download:
            vocoder_name = vocoder_kind(chosen["vocoder"].path if chosen["vocoder"].source != "missing" else None)
        else:
            vocoder_name = vocoders.RTVC_VOCODER  # about to be downloaded
        if not vocoders.needs_file(vocoder_name):
            notes.append("No vocoder file: using Griffin-Lim (add --download for RTVC's vocoder).")
    neural = vocoders.needs_file(vocoder_name)
    wanted = [name for name, model in chosen.items() if model.source in ("shipped", "missing")
              and (name == "synthesizer" or vocoders.published_by_rtvc(vocoder_name))]
    if wanted and download:
        ensure_default_models(models_dir, wanted, base_url=models_url, source_dir=models_source,
                              show_progress=show_progress)
        chosen.update({name: resolve_model(name, models_dir) for name in wanted})
    shipped = [name for name, model in chosen.items()
               if model.source == "shipped" and (name == "synthesizer" or neural)]
    if shipped:
        notes.append(f"Using this project's offline {' and '.join(shipped)} from '{chosen[shipped[0]].path.parent}' "
                     "(add --download for RTVC's published models).")
    paths = ModelPaths(resolve_model("encoder", models_dir, encoder).path, chosen["synthesizer"].path,
                       chosen["vocoder"].path if neural else None)
    return ResolvedModels(paths, vocoder_name, notes)


# The warnings module is process-wide: recording blocks must not overlap, whichever pipeline runs them.
_RECORDING = threading.RLock()
_REPO_ROOT = Path(__file__).resolve().parent


@contextlib.contextmanager
def recorded_warnings(notes: list[str]) -> Iterator[None]:
    """Turn the project's warnings raised inside the block into data: their messages go to ``notes``.

    The models and the audio code warn (a clipped reference, a text cut at the frame limit); every
    result of the pipeline carries these notes, so its callers never touch :mod:`warnings`.
    """
    with _RECORDING, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                category = warning.category
                ours = issubclass(category, UserWarning) and not issubclass(category, DeprecationWarning)
                if ours and Path(warning.filename).resolve().is_relative_to(_REPO_ROOT):
                    if str(warning.message) not in notes:
                        notes.append(str(warning.message))


def split_text(text: str | Sequence[str]) -> tuple[list[str], list[str]]:
    """The sentences to synthesize and the warnings about the text (see :func:`prepare_utterances`).

    A string is split into lines and sentences, so that attention never has to cover a paragraph;
    a list is taken as already split.
    """
    notes: list[str] = []
    if any("\0" in item for item in ([text] if isinstance(text, str) else text)):
        # espeak-ng reads C strings: everything after the first NUL was silently dropped.
        raise ValueError("The text contains NUL characters (a UTF-16 file read as UTF-8?); save it as UTF-8 text.")
    if not isinstance(text, str):
        sentences = [sentence for sentence in text if sentence.strip()]
        if not sentences:
            raise ValueError("The text is empty: type at least one word.")
        return sentences, notes
    with recorded_warnings(notes):
        return prepare_utterances(text), notes


@dataclass
class Reference:
    """A reference recording at :data:`SAMPLE_RATE`, as loaded (before the encoder trims its silences)."""

    name: str
    wav: np.ndarray  # (samples,) float32
    description: str  # how messages name it: "The audio file 'x.wav'"
    source: Path | None = None
    warnings: list[str] = field(default_factory=list)


def load_reference(reference: str | Path | tuple[np.ndarray, int] | Reference, name: str | None = None) -> Reference:
    """Load a file, or take a ``(waveform, rate)`` pair, as a reference at :data:`SAMPLE_RATE`.

    Raises :class:`~utils.audio_io.AudioError` for unreadable, empty, silent or corrupt audio, so
    that a CLI can check its inputs before any model is loaded.
    """
    if isinstance(reference, Reference):
        return reference
    notes: list[str] = []
    if isinstance(reference, tuple):
        wav, rate = reference
        label = name or "recording"
        return Reference(label, resample(np.asarray(wav, dtype=np.float32), rate, SAMPLE_RATE),
                         f"The recording '{label}'")
    with recorded_warnings(notes):
        wav, _ = load_audio_with_rate(reference, SAMPLE_RATE)
    return Reference(name or Path(reference).name, wav, f"The audio file '{reference}'", Path(reference), notes)


@dataclass
class ReferenceEmbedding:
    """One reference's embedding (with its partial embeddings) and the speech it rests on."""

    reference: Reference
    details: UtteranceEmbedding
    speech_seconds: float  # speech left after silence trimming
    warnings: list[str] = field(default_factory=list)

    @property
    def embedding(self) -> np.ndarray:
        return self.details.embedding


@dataclass
class VoiceEmbedding:
    """A voice built from one or more references."""

    embedding: np.ndarray  # (E,) unit norm
    reference_embeddings: list[np.ndarray]  # one (E,) per reference
    names: list[str]
    speech_seconds: float  # speech left after silence trimming, all references together
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def average(cls, embeddings: Sequence[np.ndarray], names: Sequence[str], speech_seconds: float,
                warnings: Sequence[str] = (), **extra: object) -> "VoiceEmbedding":
        """One voice from the references' embeddings, with their warnings and one when speech is short."""
        notes = list(warnings)
        if speech_seconds < MIN_RECOMMENDED_SPEECH_SECONDS:
            notes.append(f"The references hold only {speech_seconds:.1f} s of speech; "
                         f"{MIN_RECOMMENDED_SPEECH_SECONDS:.0f} s or more gives a closer voice.")
        return cls(average_embeddings(embeddings), list(embeddings), list(names), speech_seconds, notes, **extra)


@dataclass
class SentenceMels:
    """Mel spectrograms of the sentences of a text, in order."""

    sentences: list[str]
    mels: list[np.ndarray]  # each (80, T_i)
    alignments: list[np.ndarray]  # each (decoder steps, characters), or (frames, phonemes) of a duration synthesizer
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # about the text and the synthesis
    architecture: str = "tacotron"  # of the synthesizer that made it ("tacotron" or "duration")

    def joined_mel(self, gap_frames: int = 0, silence_value: float = -4.0) -> np.ndarray:
        """All sentences as one mel ``(80, ΣT + gaps)`` with ``gap_frames`` of silence between them."""
        pieces: list[np.ndarray] = []
        for index, mel in enumerate(self.mels):
            if index and gap_frames:
                pieces.append(np.full((mel.shape[0], gap_frames), silence_value, dtype=np.float32))
            pieces.append(mel)
        return np.concatenate(pieces, axis=1)


@dataclass
class CloneResult:
    """The cloned speech with everything that led to it."""

    wav: np.ndarray  # (samples,) float32
    sample_rate: int
    synthesis: SentenceMels
    timings: dict[str, float]  # stage → seconds
    warnings: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.wav) / self.sample_rate



def load_vocoder_for_synthesized_mels(path: str | Path, device: str | torch.device = "cpu",
                                      exact: bool | None = None) -> MelVocoder:
    """A vocoder file of any kind, set up for a synthesizer's (smoothed) mels, as the pipeline vocodes only those
    (:meth:`~vocoder.base.MelVocoder.use_synthesized_mels`)."""
    return vocoders.load(path, device, exact=exact, synthesized_mels=True)


class ClonePipeline:
    """Encoder + synthesizer + vocoder, loaded lazily on one device.

    Parameters
    ----------
    paths
        Checkpoint files; a stage whose file is ``None`` or missing raises :class:`MissingModelError`
        with instructions when it is first needed.
    device
        ``"cpu"``, ``"cuda"``, a :class:`torch.device`, or ``None`` for CUDA when available.
    missing_model_help
        Extra advice appended to missing-model messages (the CLI says which flags to use).
    exact_vocoder
        Use RTVC's exact WaveRNN generation (same samples as RTVC for a seed, about 4× slower on a
        CPU) instead of the fast path (:mod:`vocoder.fast`: bf16, short click-free folds, sentences
        vocoded together).
    exact_griffin_lim
        Griffin-Lim with RTVC's settings instead of the tuned fast Griffin-Lim.
    """

    def __init__(self, paths: ModelPaths, device: str | torch.device | None = None,
                 missing_model_help: str = "", exact_vocoder: bool = False, exact_griffin_lim: bool = False) -> None:
        self.paths = paths
        self.exact_vocoder = exact_vocoder
        self.exact_griffin_lim = exact_griffin_lim
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.missing_model_help = missing_model_help
        self._encoder: Encoder | None = None
        self._synthesizer: MelSynthesizer | None = None
        self._neural_vocoder: MelVocoder | None = None
        self._transcriber: Transcriber | None = None

    # ----------------------------------------------------------------------------------- models
    def _require(self, what: str, path: Path | None) -> Path:
        if path is None or not Path(path).exists():
            where = f" at '{path}'" if path is not None else ""
            advice = {
                "encoder": "install the default one with `pip install --no-deps resemblyzer` (its copy is used, "
                "no download) or `python -m utils.default_models encoder`",
                "synthesizer": "download RTVC's pretrained one with `python -m utils.default_models synthesizer` "
                "(370 MB), or train your own synthesizer on your data",
                "vocoder": "download RTVC's pretrained one with `python -m utils.default_models vocoder` (54 MB), "
                "train your own, or use the Griffin-Lim vocoder (`--vocoder griffinlim`), which needs no file",
            }[what]
            extra = f" {self.missing_model_help}" if self.missing_model_help else ""
            raise MissingModelError(f"No {what} model{where}: {advice}.{extra}")
        return Path(path)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = Encoder.from_checkpoint(self._require("encoder", self.paths.encoder), self.device)
        return self._encoder

    @property
    def synthesizer(self) -> MelSynthesizer:
        """The synthesizer of the file, whichever kind it holds."""
        if self._synthesizer is None:
            path = self._require("synthesizer", self.paths.synthesizer)
            self._synthesizer = synthesizers.load(path, self.device)
        return self._synthesizer

    @property
    def neural_vocoder(self) -> MelVocoder:
        """The vocoder file's model, whichever kind it holds."""
        if self._neural_vocoder is None:
            self._neural_vocoder = load_vocoder_for_synthesized_mels(self._require("vocoder", self.paths.vocoder),
                                                                     self.device, exact=self.exact_vocoder)
        return self._neural_vocoder

    def vocoder(self, kind: VocoderName) -> MelVocoder:
        """The vocoder of ``kind``: the vocoder file's model, or a new one of a kind that needs no file."""
        if not vocoders.needs_file(vocoders.VOCODERS.require(kind)):
            hparams = self._synthesizer.hparams if self._synthesizer is not None else None
            return vocoders.build(kind, hparams, exact=self.exact_griffin_lim)
        loaded = self.neural_vocoder
        if loaded.kind != kind:
            raise ValueError(f"The vocoder file '{self.paths.vocoder}' holds {with_article(loaded.title)} vocoder, "
                             f"not {with_article(vocoders.kind_class(kind).title)} one: choose the vocoder "
                             f"'{loaded.kind}' or give another file.")
        return loaded

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def load_all(self, vocoder: VocoderName = "wavernn") -> None:
        """Load every model the given vocoder choice needs now (so errors surface before any work)."""
        _ = self.encoder, self.synthesizer, self.vocoder(vocoder)

    # ----------------------------------------------------------------------------------- stages
    def embed_reference(self, reference: str | Path | tuple[np.ndarray, int] | Reference,
                        name: str | None = None) -> ReferenceEmbedding:
        """Load (see :func:`load_reference`), preprocess (loudness, VAD trim) and embed one reference.

        Raises :class:`~utils.audio_io.AudioError` naming the reference when no speech is left.
        """
        reference = load_reference(reference, name)
        encoder = self.encoder
        notes = list(reference.warnings)
        with recorded_warnings(notes):
            speech = require_speech(encoder.preprocess(reference.wav, SAMPLE_RATE), reference.description,
                                    encoder.hparams)
        return ReferenceEmbedding(reference, encoder.embed_utterance_details(speech),
                                  len(speech) / encoder.sample_rate, notes)

    def embed_references(self, references: Sequence[str | Path | tuple[np.ndarray, int] | Reference],
                         names: Sequence[str] | None = None) -> VoiceEmbedding:
        """Embed one or more reference recordings and average them into one voice.

        Parameters
        ----------
        references
            Audio file paths, ``(waveform, sample_rate)`` pairs, or :class:`Reference` objects.
        names
            Display names for the references (default: file names, or "reference N").
        """
        if len(references) == 0:
            raise ValueError("Give at least one reference recording.")
        if names is not None and len(names) != len(references):
            raise ValueError(f"Got {len(names)} names for {len(references)} references.")
        embedded = [self.embed_reference(reference, names[index] if names else
                                         f"reference {index + 1}" if isinstance(reference, tuple) else None)
                    for index, reference in enumerate(references)]
        return VoiceEmbedding.average([e.embedding for e in embedded], [e.reference.name for e in embedded],
                                      sum(e.speech_seconds for e in embedded),
                                      [note for e in embedded for note in e.warnings])

    def synthesize(self, text: str | Sequence[str], voice: VoiceEmbedding | np.ndarray, *, seed: int | None = None,
                   progress_callback: ProgressCallback | None = None, speaking_rate: float = 1.0,
                   pitch_shift: float = 0.0, energy: float = 1.0,
                   step_callback: Callable[..., None] | None = None) -> SentenceMels:
        """Text → mel spectrograms, one per sentence (the text is split by :func:`split_text`).

        ``speaking_rate`` (0.5-2) speaks faster above 1 and slower below; ``pitch_shift`` (semitones,
        −12..12) needs a synthesizer with a variance adaptor; ``energy`` (0.5-2) scales loudness.
        ``step_callback`` gets a Tacotron's decoder steps (see :meth:`Synthesizer.synthesize`); the
        duration synthesizer, which makes a sentence in one pass, reports per sentence only. The warnings of the output
        name each text as "Text N (…)", N counting from 0 in ``text``'s sentences.
        """
        speaking_rate = check_speaking_rate(speaking_rate)
        prosody = {"speaking_rate": speaking_rate, "pitch_shift": check_pitch_shift(pitch_shift),
                   "energy": check_energy(energy)}
        sentences, notes = split_text(text)
        embedding = voice.embedding if isinstance(voice, VoiceEmbedding) else np.asarray(voice, dtype=np.float32)
        synthesizer = self.synthesizer
        if seed is not None:
            # The pre-net dropout stays on at inference (RTVC's behaviour), so the seed drives it.
            torch.manual_seed(seed)
        start = time.perf_counter()
        extra = {"step_callback": step_callback} if step_callback is not None and synthesizer.reports_steps else {}
        with recorded_warnings(notes):
            result = synthesizer.synthesize(sentences, embedding, progress_callback=progress_callback,
                                            **prosody, **extra)
        return SentenceMels(sentences, result.mels, result.alignments, time.perf_counter() - start, notes,
                               synthesizer.architecture)

    def vocode(self, mel: np.ndarray, vocoder: VocoderName = "wavernn", *, seed: int | None = None,
               progress_callback: ProgressCallback | None = None) -> np.ndarray:
        """Mel ``(80, T)`` → waveform ``((T − 1) · 200,)`` float32 with WaveRNN, the iSTFT vocoder or Griffin-Lim."""
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.vocoder(vocoder).vocode(mel, progress_callback=progress_callback, generator=generator)

    def vocode_batch(self, mels: Sequence[np.ndarray], vocoder: VocoderName = "wavernn", *,
                     seed: int | None = None,
                     progress_callback: ProgressCallback | None = None) -> list[np.ndarray]:
        """The raw waveform of each mel; the fast WaveRNN path runs all their folds as one batch."""
        return self.vocoder(vocoder).vocode_batch(list(mels), progress_callback=progress_callback, seed=seed)

    def clone(self, voice: VoiceEmbedding | np.ndarray, text: str | Sequence[str], *,
              vocoder: VocoderName = "wavernn", seed: int | None = None, enhance: bool = False,
              synthesis_progress: ProgressCallback | None = None,
              vocoder_progress: ProgressCallback | None = None, speaking_rate: float = 1.0,
              pitch_shift: float = 0.0, energy: float = 1.0) -> CloneResult:
        """Synthesize and vocode ``text`` in ``voice``; sentences are joined with short pauses.

        The waveform holds ``(T_i − 1) · 200`` samples per sentence mel, with 0.15 s of silence
        between sentences.
        """
        synthesis = self.synthesize(text, voice, seed=seed, progress_callback=synthesis_progress,
                                    speaking_rate=speaking_rate, pitch_shift=pitch_shift, energy=energy)
        start = time.perf_counter()
        pieces = self.vocode_batch(synthesis.mels, vocoder, seed=seed, progress_callback=vocoder_progress)
        vocode_seconds = time.perf_counter() - start
        gap = np.zeros(int(SENTENCE_GAP_SECONDS * self.sample_rate), dtype=np.float32)
        wav = np.concatenate([part for piece in pieces for part in (gap, piece)][1:])
        wav = enhance_output(wav, self.sample_rate) if enhance else limit_peak(wav)
        timings = {"synthesizer": synthesis.seconds, vocoder: vocode_seconds}
        return CloneResult(wav.astype(np.float32), self.sample_rate, synthesis, timings, list(synthesis.warnings))

    def stream(self, voice: VoiceEmbedding | np.ndarray, text: str | Sequence[str], *,
               vocoder: VocoderName = "wavernn", seed: int | None = None, enhance: bool = False,
               step_callback: Callable[..., None] | None = None, vocoder_progress: ProgressCallback | None = None,
               on_audio: AudioCallback | None = None, on_synthesis: Callable[[SentenceMels], None] | None = None,
               speaking_rate: float = 1.0, pitch_shift: float = 0.0,
               energy: float = 1.0) -> Iterator[StreamedSentence | CloneResult]:
        """Synthesize and vocode sentence by sentence, yielding each as soon as its audio exists, and
        last the :class:`CloneResult` of the whole text (the sentences' audio joined, as played).

        This is what lets playback start while later sentences are still being made. Sentence ``i``
        uses the seed ``seed + i``, so a streamed text is repeatable. Each piece ends with the short
        pause that separates sentences. ``step_callback`` gets a Tacotron's decoder steps;
        ``on_synthesis`` gets each sentence's mel before it is vocoded.

        ``on_audio`` (a player's ``push``) receives the audio earlier still: with the fast WaveRNN path
        and no ``enhance``, each sentence arrives in pieces while it is vocoded, the first after a
        fraction of the sentence's generation time (:meth:`vocoder.inference.WaveRNNVocoder.vocode_stream`);
        peaks are then soft-limited piece by piece instead of scaling the whole sentence. Otherwise it
        gets each whole sentence. The pieces it receives join into the sentences' ``wav``.
        """
        sentences, text_notes = split_text(text)
        parts: list[StreamedSentence] = []
        for index, sentence in enumerate(sentences):
            sentence_seed = None if seed is None else seed + index
            part = self.synthesize([sentence], voice, seed=sentence_seed, speaking_rate=speaking_rate,
                                   pitch_shift=pitch_shift, energy=energy, step_callback=step_callback)
            if on_synthesis is not None:
                on_synthesis(part)
            start = time.perf_counter()
            piece = self.vocode_for_playback(part.mels[0], vocoder, seed=sentence_seed, enhance=enhance,
                                             progress_callback=vocoder_progress, on_audio=on_audio)
            parts.append(StreamedSentence(index, len(sentences), sentence, part.mels[0], part.alignments[0], piece,
                                          part.seconds, time.perf_counter() - start, part.warnings))
            yield parts[-1]
        synthesis = SentenceMels(sentences, [p.mel for p in parts], [p.alignment for p in parts],
                                    sum(p.synthesis_seconds for p in parts), text_notes, self.synthesizer.architecture)
        timings = {"synthesizer": synthesis.seconds, vocoder: sum(p.vocoder_seconds for p in parts)}
        notes = text_notes + [note for p in parts for note in p.warnings]
        yield CloneResult(np.concatenate([p.wav for p in parts]), SAMPLE_RATE, synthesis, timings, notes)

    def vocode_for_playback(self, mel: np.ndarray, vocoder: VocoderName = "wavernn", *, seed: int | None = None,
                            enhance: bool = False, progress_callback: ProgressCallback | None = None,
                            on_audio: AudioCallback | None = None) -> np.ndarray:
        """One sentence's playable audio: vocoded, enhanced or peak-limited, then the pause that follows it.

        ``on_audio`` receives the audio as soon as it is playable: in pieces while a vocoder that streams
        makes them (soft-limited one by one, as the sentence's peak is not known yet), else the
        whole sentence at the end. The pieces join into the returned waveform.
        """
        gap = np.zeros(int(SENTENCE_GAP_SECONDS * self.sample_rate), dtype=np.float32)
        model = self.vocoder(vocoder)
        if on_audio is not None and model.streams and not enhance:
            generator = torch.Generator().manual_seed(seed) if seed is not None else None
            pieces = []
            for piece in model.vocode_stream(mel, progress_callback=progress_callback, generator=generator):
                pieces.append(soft_limit(piece))
                on_audio(pieces[-1])
            on_audio(gap)
            return np.concatenate(pieces + [gap])
        piece = self.vocode(mel, vocoder, seed=seed, progress_callback=progress_callback)
        piece = enhance_output(piece, self.sample_rate) if enhance else limit_peak(piece)
        wav = np.concatenate([piece.astype(np.float32), gap])
        if on_audio is not None:
            on_audio(wav)
        return wav


    # ------------------------------------------------------------------------------ conversion
    @property
    def transcriber(self) -> Transcriber:
        """Whisper base (CPU), loaded on first use: recognises a conversion's source."""
        if self._transcriber is None:
            from utils.asr import Transcriber

            self._transcriber = Transcriber.load()
        return self._transcriber

    def convert(self, voice: VoiceEmbedding | np.ndarray, source: str | Path | tuple[np.ndarray, int] | Reference,
                *, source_text: str | None = None, target_register: F0Register | None = None,
                vocoder: VocoderName = "wavernn", seed: int | None = None, enhance: bool = False,
                speaking_rate: float = 1.0, pitch_shift: float = 0.0, energy: float = 1.0,
                progress: Callable[[float, str], None] | None = None,
                on_segment: Callable[[SentenceMels], None] | None = None) -> ConversionResult:
        """The words of the ``source`` recording with its timing (and intonation) in ``voice``.

        The words are ``source_text`` or what Whisper recognises; they are aligned to the source's
        mel by the duration synthesizer's aligner under the source speaker's embedding, and spoken in
        ``voice`` with the source's phoneme durations. A synthesizer with pitch control also gets the
        source's F0 contour moved to ``target_register`` (the target references' register; default:
        the register the synthesizer predicts for the voice). Given words are checked against the
        recording (words it does not say are named); recognised ones come from it and are not. Sources
        longer than a few seconds are
        split at pauses. ``speaking_rate``, ``pitch_shift`` and ``energy`` act on the converted speech
        as on synthesized speech. ``progress(fraction, what)`` may raise to stop (the toolbox's Cancel);
        ``on_segment`` gets each piece's mel as soon as it is made.

        Raises
        ------
        ConversionError
            No speech, over 5 minutes, another language, words that cannot be aligned, or a
            synthesizer that is not a duration synthesizer.
        """
        from synthesizer.duration.conversion import (
            ConversionError,
            Segment,
            convert_segment,
            f0_register,
            split_at_pauses,
            time_text_words,
        )
        from synthesizer.text import clean_text
        from utils.asr import normalize_transcript

        from synthesizer.duration.model import Prosody

        def tell(fraction: float, what: str) -> None:
            if progress is not None:
                progress(fraction, what)

        prosody = Prosody(check_speaking_rate(speaking_rate), check_pitch_shift(pitch_shift), check_energy(energy))
        source = load_source(source)
        seconds = len(source.wav) / SAMPLE_RATE
        if source_text is not None and not source_text.strip():
            raise ConversionError("The source text is empty: give the words the recording says.")
        synthesizer = self.synthesizer
        if not synthesizer.converts:
            raise ConversionError("Converting a recording needs a duration synthesizer (this project's shipped "
                                  f"one); the loaded synthesizer is a {synthesizer.architecture} synthesizer.")
        notes = list(source.warnings)
        start_time = time.perf_counter()
        tell(0.0, "Embedding the source")
        try:
            source_embedding = self.embed_reference(source)
        except UserError as error:
            raise ConversionError(f"No speech found in the source ({str(error).strip().rstrip('.')}).") from None
        notes += [note for note in source_embedding.warnings if note not in notes]
        wav = source.wav / max(float(np.max(np.abs(source.wav))), 1e-9) * 0.9  # as the training audio
        words = None
        if source_text is None or seconds > 12.0:
            tell(0.05, "Recognising the source" if source_text is None else "Timing the words")
            heard = self.transcriber.recognise(wav)
            if not heard.words:
                raise ConversionError(f"No speech found in the source: the recogniser heard no words in "
                                      f"{source.description[0].lower()}{source.description[1:]}.")
            if heard.foreign:
                raise ConversionError(f"The source seems to be in {language_name(heard.language)}, not English; "
                                      "the synthesizer speaks English only.")
            words = heard.words
        if source_text is not None:
            text_words = clean_text(" ".join(source_text.split()), ("english_cleaners",)).split()
            if words:
                words = time_text_words(text_words, words, normalize_transcript)
            segments = ([Segment(0, len(wav), " ".join(text_words))] if not words
                        else split_at_pauses(words, len(wav)))
        else:
            segments = split_at_pauses(words, len(wav))
        transcript = " ".join(segment.text for segment in segments)
        embedding = voice.embedding if isinstance(voice, VoiceEmbedding) else np.asarray(voice, np.float32)
        source_register = f0_register(wav)
        pitched = synthesizer.model.hparams.variance_adaptor
        if not pitched:
            notes.append("This synthesizer has no pitch input: the conversion keeps the source's words and "
                         "timing, not its intonation.")
        generator = torch.Generator(device=synthesizer.device)
        if seed is not None:
            generator.manual_seed(seed)
        mels, alignments, pieces = [], [], []
        vocode_seconds = synth_seconds = 0.0
        for index, segment in enumerate(segments):
            tell(0.1 + 0.9 * index / len(segments), f"Converting part {index + 1} of {len(segments)}")
            begin = time.perf_counter()
            with recorded_warnings(notes):
                converted = convert_segment(synthesizer, wav[segment.start:segment.end], segment.text,
                                            source_embedding.embedding, embedding, source_register=source_register,
                                            target_register=target_register, prosody=prosody,
                                            generator=generator, check_words=source_text is not None)
            synth_seconds += time.perf_counter() - begin
            mels.append(converted.mel)
            alignments.append(converted.alignment)
            if on_segment is not None:
                on_segment(SentenceMels([segment.text], [converted.mel], [converted.alignment],
                                           architecture=synthesizer.architecture))
            begin = time.perf_counter()
            tell(0.1 + 0.9 * (index + 0.5) / len(segments), f"Vocoding part {index + 1} of {len(segments)}")
            piece = self.vocode(converted.mel, vocoder, seed=None if seed is None else seed + index)
            pieces.append(piece)
            vocode_seconds += time.perf_counter() - begin
        tell(1.0, "Done")
        out = np.concatenate(pieces).astype(np.float32)
        out = enhance_output(out, self.sample_rate) if enhance else limit_peak(out)
        synthesis = SentenceMels([segment.text for segment in segments], mels, alignments, synth_seconds, notes,
                                    synthesizer.architecture)
        from utils.mel import melspectrogram

        timings = {"synthesizer": synth_seconds, vocoder: vocode_seconds,
                   "total": time.perf_counter() - start_time}
        return ConversionResult(out, self.sample_rate, synthesis, timings, list(notes),
                                source_mel=melspectrogram(wav), transcript=transcript, pitch_transferred=pitched)


def load_source(source: str | Path | tuple[np.ndarray, int] | Reference) -> Reference:
    """Load a conversion's source recording (see :func:`load_reference`), refusing one over 5 minutes."""
    from synthesizer.duration.conversion import MAX_SOURCE_SECONDS, ConversionError

    source = load_reference(source, "source")
    seconds = len(source.wav) / SAMPLE_RATE
    if seconds > MAX_SOURCE_SECONDS:
        raise ConversionError(f"{source.description} lasts {seconds / 60:.1f} minutes; convert at most "
                              f"{MAX_SOURCE_SECONDS / 60:.0f} minutes at a time (cut it into parts).")
    return source


#: Names of the languages Whisper most often hears instead of English.
LANGUAGE_NAMES = {"de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
                  "nl": "Dutch", "ru": "Russian", "zh": "Chinese", "ja": "Japanese", "ko": "Korean",
                  "pl": "Polish", "sv": "Swedish", "tr": "Turkish", "ar": "Arabic", "hi": "Hindi", "th": "Thai"}


def language_name(code: str) -> str:
    """``"de"`` → ``"German"``; unknown codes are given as they are."""
    return LANGUAGE_NAMES.get(code, f"the language '{code}'")


@dataclass
class ConversionResult(CloneResult):
    """A converted recording: the clone, with the source's mel and words."""

    source_mel: np.ndarray | None = None  # (80, T) of the whole source
    transcript: str = ""  # the words spoken (recognised, or as given)
    pitch_transferred: bool = False  # the synthesizer had a pitch input and got the source's contour


@dataclass
class StreamedSentence:
    """One sentence of a streamed clone: its mel, alignment and audio (with the following pause)."""

    index: int
    count: int
    sentence: str
    mel: np.ndarray
    alignment: np.ndarray
    wav: np.ndarray
    synthesis_seconds: float
    vocoder_seconds: float
    warnings: list[str] = field(default_factory=list)  # "Text 0 (…)" means this sentence


def limit_peak(wav: np.ndarray, peak: float = OUTPUT_PEAK) -> np.ndarray:
    """Scale down (never up) so the waveform does not clip when written as integers."""
    current = float(np.max(np.abs(wav))) if wav.size else 0.0
    return wav * (peak / current) if current > peak else wav


def soft_limit(wav: np.ndarray, peak: float = OUTPUT_PEAK, knee: float = 0.8) -> np.ndarray:
    """Leave samples below ``knee·peak`` alone and bend larger ones smoothly towards ``peak``.

    For audio played as it is made, where the sentence's peak is not known yet: the curve is
    continuous with slope 1 at the knee, so quiet pieces are untouched and no sample reaches ``peak``.

    Examples
    --------
    >>> soft_limit(np.array([0.1, -0.5, 3.0, -40.0])).astype(np.float64).round(3).tolist()
    [0.1, -0.5, 0.97, -0.97]
    """
    wav = np.asarray(wav, dtype=np.float32)
    start = knee * peak
    magnitude = np.abs(wav)
    if not (magnitude > start).any():
        return wav
    room = peak - start
    bent = start + room * np.tanh((magnitude - start) / room)
    return np.where(magnitude > start, np.sign(wav) * bent, wav).astype(np.float32)


def enhance_output(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Trim long silences (webrtcvad) and peak-normalise to 0.97: RTVC's "Enhance vocoder output".

    Unlike RTVC, no −30 dBFS gain is applied first, so quiet outputs are not pumped up and clipped.
    """
    from encoder.hparams import EncoderHParams

    wav = np.asarray(wav, dtype=np.float32)
    hparams = EncoderHParams(sample_rate=sample_rate)
    if webrtcvad_available() and len(wav) >= hparams.vad_window_samples:
        # Pad with silence first so the final words are not lost in the dropped partial VAD window.
        padded = np.pad(wav, (0, hparams.vad_window_samples))
        trimmed = trim_long_silences(padded, hparams)
        if trimmed.size:
            wav = trimmed
    current = float(np.max(np.abs(wav))) if wav.size else 0.0
    return wav * (OUTPUT_PEAK / current) if current > 0 else wav
