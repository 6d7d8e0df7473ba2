"""Text + speaker embedding → mel spectrograms with a loaded Tacotron.

:class:`Synthesizer` loads RTVC's published ``synthesizer.pt`` (hyperparameters are RTVC's defaults,
``r`` comes from the ``decoder.r`` buffer) or one of our own checkpoints (hyperparameters and symbol
table stored in the file), cleans and encodes texts, batches them and returns one post-net mel per
text, trimmed like RTVC.

Differences from RTVC's wrapper, all without changing the weights:

* every text sounds as it would alone, whatever else is in its batch (see
  :meth:`synthesizer.model.Tacotron.generate`); ``exact_rtvc_batching=True`` restores RTVC;
* ``embeddings`` may be one ``(256,)`` array for all texts, an ``(N, 256)`` array or a list;
* all alignments are returned (RTVC returned the last batch's only), and a warning says when a text
  never reached its stop token.

Examples
--------
>>> import numpy as np, torch
>>> from synthesizer.hparams import SynthesizerHParams
>>> from synthesizer.model import build_tacotron
>>> hp = SynthesizerHParams(tts_embed_dims=32, tts_encoder_dims=32, tts_decoder_dims=32,
...                         tts_postnet_dims=32, tts_lstm_dims=64)
>>> synthesizer = Synthesizer(build_tacotron(hp))
>>> result = synthesizer.synthesize(["Hello there."], np.ones(256, np.float32) / 16, max_steps=20)
>>> result.mels[0].shape[0], result.mels[0].dtype
(80, dtype('float32'))
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from synthesizer.base import (  # noqa: F401 (re-exported: the public names of synthesis)
    MAX_ENERGY,
    MAX_PITCH_SHIFT,
    MAX_SPEAKING_RATE,
    MIN_ENERGY,
    MIN_SPEAKING_RATE,
    GtaSource,
    SynthesisResult,
    SynthesisWarning,
    as_embedding_matrix,
    check_energy,
    check_pitch_shift,
    check_speaking_rate,
    mel_level_offset,
)
from synthesizer.hparams import SynthesizerHParams
from synthesizer.model import Tacotron, build_tacotron, stop_lengths
from synthesizer.text import encode_text
from synthesizer.text.symbols import SYMBOLS
from utils.checkpoints import CheckpointError, load_model, make_payload, require_finite, save_checkpoint
from utils.progress import ProgressCallback


def trim_silent_tail(mel: np.ndarray, threshold: float) -> np.ndarray:
    """Drop trailing frames whose loudest band is below ``threshold`` (RTVC), keeping one frame.

    Examples
    --------
    >>> mel = np.full((2, 5), -4.0, np.float32); mel[:, :2] = 0.0
    >>> trim_silent_tail(mel, -3.4).shape
    (2, 2)
    """
    quiet = mel.max(axis=0) < threshold  # (T,); NaN counts as loud, as in RTVC's loop
    loud = np.flatnonzero(~quiet)
    end = int(loud[-1]) + 1 if loud.size else 1
    return mel[:, :end]


def scale_mel_energy(mel: np.ndarray, factor: float, max_abs_value: float, min_level_db: float) -> np.ndarray:
    """A normalised mel ``(num_mels, T)`` with its amplitude scaled by ``factor`` (a level shift in dB).

    >>> scale_mel_energy(np.zeros((1, 2), np.float32), 10.0, 4.0, -100.0).tolist()
    [[1.600000023841858, 1.600000023841858]]
    """
    offset = mel_level_offset(factor, max_abs_value, min_level_db)
    return np.clip(mel + offset, -max_abs_value, max_abs_value).astype(np.float32)


def stretch_mel(mel: np.ndarray, speaking_rate: float) -> np.ndarray:
    """Resample a mel ``(num_mels, T)`` along time to ``round(T / speaking_rate)`` frames (linear interpolation).

    Examples
    --------
    >>> stretch_mel(np.array([[0.0, 1.0, 2.0, 3.0]]), 2.0).tolist()
    [[0.0, 3.0]]
    >>> stretch_mel(np.array([[0.0, 2.0]]), 0.5).tolist()
    [[0.0, 0.6666666865348816, 1.3333333730697632, 2.0]]
    """
    n_frames = mel.shape[1]
    target = max(1, round(n_frames / speaking_rate))
    if target == n_frames:
        return mel
    positions = np.linspace(0, n_frames - 1, target)
    frames = np.arange(n_frames)
    return np.stack([np.interp(positions, frames, band) for band in mel]).astype(np.float32)


def load_synthesizer(path: str | Path, device: str | torch.device = "cpu"):
    """Load any synthesizer file, whichever kind it holds (see :func:`synthesizer.registry.load`)."""
    from synthesizer.registry import load

    return load(path, device)


class Synthesizer:
    """A Tacotron ready for inference, with its hyperparameters.

    Parameters
    ----------
    model
        The Tacotron (its ``r`` buffer decides frames per decoder step).
    hparams
        Its hyperparameters (default: ``model.hparams``).
    path
        The checkpoint it came from, if any.

    Examples
    --------
    >>> from synthesizer.hparams import SynthesizerHParams
    >>> hp = SynthesizerHParams(tts_embed_dims=16, tts_encoder_dims=16, tts_decoder_dims=16,
    ...                         tts_postnet_dims=16, tts_lstm_dims=32)
    >>> synthesizer = Synthesizer(build_tacotron(hp))
    >>> synthesizer.r, synthesizer.step, synthesizer.sample_rate
    (1, 0, 16000)
    """

    def __init__(self, model: Tacotron, hparams: SynthesizerHParams | None = None,
                 path: str | Path | None = None) -> None:
        self.model = model
        self.hparams = hparams if hparams is not None else model.hparams
        self.path = Path(path) if path is not None else None

    architecture = "tacotron"
    reports_steps = True
    converts = False

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu",
                        checkpoint: dict | None = None) -> "Synthesizer":
        """Load RTVC's ``synthesizer.pt`` or one of our Tacotron checkpoints.

        ``checkpoint`` is the file's contents when they were read already (:func:`load_synthesizer`).

        Raises
        ------
        CheckpointError
            When the file is missing, damaged, another model's, or made for another symbol table.
        """
        if checkpoint is not None and checkpoint.get("architecture", cls.architecture) != cls.architecture:
            raise CheckpointError(f"The synthesizer checkpoint '{path}' is not a Tacotron; "
                                  "load it with load_synthesizer.")
        model, hparams, checkpoint = load_model(path, "synthesizer", SynthesizerHParams, build_tacotron, device,
                                                checkpoint)
        symbols = checkpoint.get("symbols")
        if symbols is not None and symbols != "".join(SYMBOLS):
            raise CheckpointError(
                f"The synthesizer checkpoint '{path}' was trained with another text symbol table "
                f"({len(symbols) if isinstance(symbols, str) else '?'} symbols, "
                f"not the {len(SYMBOLS)} of this version), "
                "so its character embedding would read the wrong letters."
            )
        return cls(model, hparams, path=path)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def step(self) -> int:
        """Training steps the weights have seen (the ``step`` buffer)."""
        return int(self.model.step.item())

    @property
    def r(self) -> int:
        """Mel frames per decoder step."""
        return self.model.r

    @property
    def sample_rate(self) -> int:
        return self.hparams.sample_rate

    def __repr__(self) -> str:
        return f"Synthesizer(path={str(self.path)!r}, step={self.step}, r={self.r}, device={str(self.device)!r})"

    def gta_source(self, in_dir: Path, device: torch.device, num_workers: int = 0) -> GtaSource:
        """Its ground-truth-aligned mels of a synthesizer data folder (teacher-forced, :mod:`synthesizer.gta`)."""
        from synthesizer.gta import TacotronGtaSource

        return TacotronGtaSource(self, in_dir, device, num_workers)

    def save(self, path: str | Path, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Write our checkpoint format (RTVC's keys plus hyperparameters and the symbol table)."""
        payload = make_payload(self.model, "synthesizer", self.hparams, optimizer, symbols="".join(SYMBOLS))
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
        """Synthesize one mel spectrogram per text.

        Parameters
        ----------
        texts
            Utterances; each is stripped and cleaned with ``hparams.tts_cleaner_names``.
        embeddings
            ``(256,)`` (one voice for all texts), ``(N, 256)`` or a list of ``(256,)`` arrays.
        batch_size
            Texts per decoder batch (default ``hparams.synthesis_batch_size``).
        progress_callback
            Called after each batch with ``(texts_done, texts_total)``.
        max_steps
            Frame limit per batch (default ``hparams.max_decoder_steps``).
        exact_rtvc_batching
            Reproduce RTVC: batches in input order, pads visible to the encoder and attention,
            no per-item cut at the stop token (only the silent tail is trimmed).
        speaking_rate
            1 keeps the model's pace; 1.25 speaks 25 % faster by resampling each mel along time
            (:func:`stretch_mel`), within [0.5, 2].
        pitch_shift
            Must be 0: the Tacotron has no pitch input (a ``ValueError`` says so).
        energy
            Amplitude factor in [0.5, 2], applied as a level shift of the mel.
        step_callback
            Passed to :meth:`Tacotron.generate`: called after every decoder step with
            ``(frame_index, mels, attention, stop)`` (progress within a batch; raise from it to abort).

        Returns
        -------
        SynthesisResult
            Post-net mels cut at each item's stop token, minus trailing frames whose maximum is
            below ``hparams.tts_stop_threshold``.

        Raises
        ------
        ValueError
            On an empty list, an empty text, or embeddings of the wrong count, size or values.
        utils.checkpoints.NonFiniteOutputError
            When the model makes NaN or infinite mels (damaged weights); the message names the checkpoint.
        """
        if isinstance(texts, str):
            raise ValueError("texts must be a sequence of strings, not a single string; wrap it in a list")
        texts = list(texts)
        if not texts:
            raise ValueError("texts is empty; nothing to synthesize")
        check_speaking_rate(speaking_rate)
        if check_pitch_shift(pitch_shift) != 0:
            raise ValueError("the Tacotron synthesizer has no pitch control; use a duration synthesizer trained "
                             "with the variance adaptor for --pitch_shift")
        energy = check_energy(energy)
        batch_size = self.hparams.synthesis_batch_size if batch_size is None else int(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        matrix = as_embedding_matrix(embeddings, len(texts), self.hparams.speaker_embedding_size)

        sequences: list[list[int]] = []
        dropped: dict[str, None] = {}  # ordered set
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"text {index} is a {type(text).__name__}, not a string")
            if not text.strip():
                raise ValueError(f"text {index} is empty")
            encoded = encode_text(text.strip(), self.hparams.tts_cleaner_names)
            if len(encoded.ids) < 2:
                raise ValueError(f"text {index} ({text.strip()[:40]!r}) has no characters the synthesizer can speak")
            sequences.append(encoded.ids)
            dropped.update(dict.fromkeys(encoded.dropped))

        order = list(range(len(texts)))
        if not exact_rtvc_batching:
            # Items are independent of their batch, so grouping similar lengths only saves padding.
            order.sort(key=lambda i: len(sequences[i]), reverse=True)

        mels: list[np.ndarray | None] = [None] * len(texts)
        alignments: list[np.ndarray | None] = [None] * len(texts)
        reached: list[bool] = [False] * len(texts)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            self._synthesize_batch(batch, sequences, matrix, max_steps, exact_rtvc_batching, mels, alignments, reached,
                                   step_callback)
            if progress_callback is not None:
                progress_callback(min(start + batch_size, len(order)), len(order))

        if speaking_rate != 1.0:
            mels = [stretch_mel(mel, speaking_rate) for mel in mels]
        if energy != 1.0:
            mels = [scale_mel_energy(mel, energy, self.hparams.max_abs_value, self.hparams.min_level_db)
                    for mel in mels]
        limit = self.hparams.max_decoder_steps if max_steps is None else max_steps
        for index, ok in enumerate(reached):
            if not ok:
                preview = texts[index].strip()
                preview = preview if len(preview) <= 40 else preview[:37] + "..."
                warnings.warn(
                    f"Text {index} ({preview!r}) reached the {limit}-frame limit without its stop token; "
                    "the text may be too long, split it into shorter sentences.",
                    SynthesisWarning,
                    stacklevel=2,
                )
        return SynthesisResult(mels, alignments, reached, tuple(dropped))  # type: ignore[arg-type]

    def _synthesize_batch(
        self,
        batch: list[int],
        sequences: list[list[int]],
        matrix: np.ndarray,
        max_steps: int | None,
        exact_rtvc_batching: bool,
        mels: list,
        alignments: list,
        reached: list,
        step_callback: Callable[..., None] | None = None,
    ) -> None:
        """Generate one batch and store each item's trimmed mel and alignment at its input index."""
        device = self.device
        lengths = [len(sequences[i]) for i in batch]
        ids = torch.zeros(len(batch), max(lengths), dtype=torch.long)  # (B, Tc), pad id 0
        for row, index in enumerate(batch):
            ids[row, : lengths[row]] = torch.tensor(sequences[index])
        speaker = torch.from_numpy(matrix[batch]).to(device)  # (B, S)
        output = self.model.generate(
            ids.to(device), speaker, max_steps,
            exact_rtvc_batching=exact_rtvc_batching,
            text_lengths=torch.tensor(lengths, device=device),
            step_callback=step_callback,
        )
        r = self.model.r
        frame_lengths, stopped = stop_lengths(output.stop, r)
        postnet = output.postnet_mels.float().cpu().numpy()  # (B, n_mels, T)
        attention = output.attention.float().cpu().numpy()  # (B, T // r, Tc)
        for row, index in enumerate(batch):
            n_frames = postnet.shape[2] if exact_rtvc_batching else int(frame_lengths[row])
            # Checked here, not by the vocoder: the message then names the model that made the NaN.
            require_finite(postnet[row, :, : max(n_frames, 1)], "synthesizer", "mel spectrograms", self.path)
            mel = trim_silent_tail(postnet[row, :, :n_frames], self.hparams.tts_stop_threshold)
            mels[index] = np.ascontiguousarray(mel, dtype=np.float32)
            n_steps = math.ceil(n_frames / r)
            alignments[index] = np.ascontiguousarray(attention[row, :n_steps, : lengths[row]], dtype=np.float32)
            reached[index] = bool(stopped[row])
