"""Text + speaker embedding → mel spectrograms with a trained duration synthesizer.

:class:`DurationSynthesizer` has the interface of :class:`synthesizer.inference.Synthesizer` (the
Tacotron), so the pipeline, the CLI and the toolbox use either one; :func:`synthesizer.inference.load_synthesizer`
picks the class from the checkpoint. Its "alignment" is the hard phoneme-to-frame path, shown in the
toolbox's attention plot, and it takes a ``speaking_rate``.

Examples
--------
>>> import numpy as np
>>> from synthesizer.duration.hparams import DurationHParams
>>> hp = DurationHParams(encoder_channels=16, duration_channels=16, decoder_channels=16, decoder_layers=1)
>>> synthesizer = DurationSynthesizer.untrained(hp)
>>> result = synthesizer.synthesize(["Hello there."], np.ones(256, np.float32) / 16)  # doctest: +SKIP
>>> result.mels[0].shape[0]  # doctest: +SKIP
80
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from synthesizer.base import (
    GtaSource,
    SynthesisResult,
    SynthesisWarning,
    as_embedding_matrix,
    check_energy,
    check_pitch_shift,
    check_speaking_rate,
)
from synthesizer.duration.hparams import DurationHParams
from synthesizer.duration.model import DurationSynthesizerModel, Prosody
from synthesizer.duration.phonemes import PhonemeFrontEnd, SymbolTable
from synthesizer.hparams import SynthesizerHParams
from utils.checkpoints import (
    CheckpointError,
    check_state_dict,
    check_state_dict_before_building,
    extract_state_dict,
    load_checkpoint_file,
    make_payload,
    read_hparams,
    require_finite,
    save_checkpoint,
)
from utils.errors import REASON_LIMIT, one_line
from utils.progress import ProgressCallback

ARCHITECTURE = "duration"


class DurationSynthesizer:
    """A loaded duration synthesizer with its phoneme front-end.

    Parameters
    ----------
    model
        The network.
    table
        Its symbol table.
    path
        The checkpoint it came from, if any.
    espeak_version
        espeak-ng version it was trained with (a warning is given when this machine's differs).
    """

    architecture = ARCHITECTURE
    reports_steps = False  # one pass per sentence: there are no decoder steps
    converts = True

    def __init__(self, model: DurationSynthesizerModel, table: SymbolTable, path: str | Path | None = None,
                 espeak_version: str | None = None) -> None:
        self.model = model.eval()
        self.table = table
        self.path = Path(path) if path is not None else None
        self.espeak_version = espeak_version
        self.front_end = PhonemeFrontEnd(table, model.hparams.cleaner_names)

    @classmethod
    def untrained(cls, hparams: DurationHParams | None = None) -> "DurationSynthesizer":
        """Random weights (tests, benchmarks of speed)."""
        table = SymbolTable.default()
        return cls(DurationSynthesizerModel(hparams or DurationHParams(), len(table)), table)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu",
                        checkpoint: dict | None = None) -> "DurationSynthesizer":
        """Load a duration synthesizer file (training checkpoint or float16 export).

        Raises
        ------
        CheckpointError
            Missing, damaged or another model's file, or symbols that do not fit the weights.
        """
        checkpoint = checkpoint if checkpoint is not None else load_checkpoint_file(path, "synthesizer")
        if checkpoint.get("architecture") != cls.architecture:
            raise CheckpointError(f"The synthesizer checkpoint '{path}' is not a duration synthesizer.")
        hparams = read_hparams(checkpoint, DurationHParams, path, "synthesizer")
        symbols = checkpoint.get("symbols")
        try:
            table = SymbolTable(symbols) if isinstance(symbols, str) else None
        except ValueError:
            table = None
        if table is None:
            raise CheckpointError(f"The synthesizer checkpoint '{path}' has no usable phoneme symbol table.")
        state = extract_state_dict(checkpoint, path, "synthesizer")
        # Shapes first, on the meta device: a small file whose hparams describe a huge model is refused
        # before gigabytes are allocated.
        check_state_dict_before_building(state, lambda hp: DurationSynthesizerModel(hp, len(table)), hparams,
                                         path, "synthesizer")
        try:
            model = DurationSynthesizerModel(hparams, len(table))
        except (ValueError, TypeError, RuntimeError, MemoryError) as error:
            raise CheckpointError(f"The synthesizer checkpoint '{path}' describes a model that cannot be built: "
                                  f"{one_line(error, REASON_LIMIT)}.") from None
        check_state_dict(state, model, path, "synthesizer")
        model.load_state_dict({key: value.float() if value.is_floating_point() else value
                               for key, value in state.items()})
        return cls(model.to(device), table, path, checkpoint.get("espeak_version"))

    # -- properties shared with the Tacotron's Synthesizer ----------------------------------------
    @property
    def hparams(self) -> SynthesizerHParams:
        """The mel contract (what Griffin-Lim and the vocoders need to know)."""
        return self.model.hparams.mel

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def step(self) -> int:
        return int(self.model.step.item())

    @property
    def r(self) -> int:
        return 1

    @property
    def sample_rate(self) -> int:
        return self.hparams.sample_rate

    def __repr__(self) -> str:
        return f"DurationSynthesizer(path={str(self.path)!r}, step={self.step}, device={str(self.device)!r})"

    def gta_source(self, in_dir: Path, device: torch.device, num_workers: int = 0) -> GtaSource:
        """Its ground-truth-aligned mels of a data folder, read in this process (``num_workers`` is not used)."""
        from synthesizer.duration.gta import DurationGtaSource

        return DurationGtaSource(self, in_dir, device)

    def save(self, path: str | Path) -> None:
        """Write the weights, hyperparameters, symbols and espeak-ng version (no optimizer)."""
        payload = make_payload(self.model, "synthesizer", self.model.hparams, None, architecture=ARCHITECTURE,
                               symbols=self.table.symbols, step=self.step,
                               espeak_version=self.espeak_version or self.front_end.phonemizer.version)
        save_checkpoint(path, payload)

    def synthesize(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray | Sequence[np.ndarray],
        *,
        batch_size: int | None = None,
        progress_callback: ProgressCallback | None = None,
        max_steps: int | None = None,
        exact_rtvc_batching: bool = False,
        speaking_rate: float = 1.0,
        pitch_shift: float = 0.0,
        energy: float = 1.0,
        step_callback: Callable[..., None] | None = None,
    ) -> SynthesisResult:
        """One mel per text (see :meth:`synthesizer.inference.Synthesizer.synthesize`).

        ``speaking_rate`` scales the predicted durations (1.5 speaks 50 % faster), within [0.5, 2].
        ``pitch_shift`` (semitones, −12..12) moves the variance adaptor's per-phoneme pitch (a model
        without one refuses it); ``energy`` (amplitude factor, 0.5..2) shifts the level of the mel. The
        flow post-net's noise comes from torch's global generator (the pipeline seeds it).
        ``max_steps`` caps the frames of each text. Each text is synthesized on its own, so a
        ``batch_size`` has no effect (a warning says so); ``exact_rtvc_batching`` and ``step_callback``
        (Tacotron decoder steps) have no meaning here and are refused with a ``ValueError``.
        """
        if exact_rtvc_batching:
            raise ValueError("exact_rtvc_batching reproduces RTVC's Tacotron batches; a duration synthesizer "
                             "synthesizes each text alone")
        if step_callback is not None:
            raise ValueError("a duration synthesizer has no decoder steps to report (see reports_steps); "
                             "use progress_callback")
        if batch_size is not None:
            warnings.warn("batch_size has no effect on a duration synthesizer: each text is synthesized alone.",
                          SynthesisWarning, stacklevel=2)
        if isinstance(texts, str):
            raise ValueError("texts must be a sequence of strings, not a single string; wrap it in a list")
        texts = list(texts)
        if not texts:
            raise ValueError("texts is empty; nothing to synthesize")
        prosody = Prosody(check_speaking_rate(speaking_rate), check_pitch_shift(pitch_shift), check_energy(energy))
        adapts = self.model.hparams.variance_adaptor
        if prosody.pitch_shift != 0 and not adapts:
            raise ValueError(f"the synthesizer '{self.path}' has no pitch control (it was trained without the "
                             "variance adaptor)")
        matrix = as_embedding_matrix(embeddings, len(texts), self.model.hparams.speaker_embedding_size)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"text {index} is a {type(text).__name__}, not a string")
            if not text.strip():
                raise ValueError(f"text {index} is empty")
            if "\0" in text:  # espeak-ng would stop at it and speak only the start
                raise ValueError(f"text {index} contains NUL characters; remove them (UTF-16 read as UTF-8?)")
        phonemized = self.front_end([text.strip() for text in texts])
        limit = self.model.hparams.max_frames if max_steps is None else int(max_steps)
        mels, alignments, reached, dropped = [], [], [], {}
        for index, item in enumerate(phonemized):
            if len(item.ids) < 3:
                raise ValueError(f"text {index} ({texts[index].strip()[:40]!r}) has nothing the synthesizer can speak")
            dropped.update(dict.fromkeys(item.dropped))
            ids = torch.tensor([item.ids], device=self.device)
            speaker = torch.from_numpy(matrix[index : index + 1]).to(self.device)
            output = self.model.infer(ids, torch.tensor([len(item.ids)], device=self.device), speaker, prosody)
            # The predicted length, before the model's own clamp at max_frames: cut sentences must be told.
            fits = int(output.durations[0].sum()) <= limit
            n_frames = min(int(output.frame_lengths[0]), limit)
            mel = output.mel[0, :, :n_frames].float().cpu().numpy()
            require_finite(mel, "synthesizer", "mel spectrograms", self.path)
            mels.append(np.ascontiguousarray(mel, dtype=np.float32))
            alignments.append(np.ascontiguousarray(output.path[0, :, :n_frames].T.cpu().numpy(), dtype=np.float32))
            reached.append(fits)
            if progress_callback is not None:
                progress_callback(index + 1, len(texts))
        for index, ok in enumerate(reached):
            if not ok:
                warnings.warn(f"Text {index} ({texts[index].strip()[:37]!r}) was cut at the {limit}-frame limit; "
                              "split it into shorter sentences.", SynthesisWarning, stacklevel=2)
        return SynthesisResult(mels, alignments, reached, tuple(dropped))
