"""Speaker embeddings of reference recordings with a loaded GE2E encoder, as RTVC's ``embed_utterance``:
the mean of overlapping 1.6 s partial embeddings, re-normalised.

>>> slices, _ = compute_partial_slices(3 * 16000)
>>> len(slices)
3
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from encoder.audio import preprocess_wav, wav_to_mel_spectrogram
from encoder.hparams import EncoderHParams
from encoder.model import SpeakerEncoder, build_speaker_encoder
from utils.checkpoints import load_model, require_finite


def compute_partial_slices(
    n_samples: int,
    hparams: EncoderHParams | None = None,
    partial_n_frames: int | None = None,
    min_pad_coverage: float | None = None,
    overlap: float | None = None,
) -> tuple[list[slice], list[slice]]:
    """``(wav_slices, mel_slices)`` of the partial windows of an utterance of ``n_samples``.

    Windows start every ``partial_n_frames * (1 - overlap)`` frames; the last is dropped when less than
    ``min_pad_coverage`` of it is audio, unless it is the only one."""
    hparams = hparams or EncoderHParams()
    partial_n_frames = partial_n_frames or hparams.partials_n_frames
    min_pad_coverage = hparams.partials_min_coverage if min_pad_coverage is None else min_pad_coverage
    overlap = hparams.partials_overlap if overlap is None else overlap
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), not {overlap}")
    if not 0 < min_pad_coverage <= 1:
        raise ValueError(f"min_pad_coverage must be in (0, 1], not {min_pad_coverage}")

    samples_per_frame = hparams.mel_hop_length
    n_frames = int(np.ceil((n_samples + 1) / samples_per_frame))
    frame_step = max(int(np.round(partial_n_frames * (1 - overlap))), 1)
    n_starts = max(1, n_frames - partial_n_frames + frame_step + 1)
    mel_slices = [slice(start, start + partial_n_frames) for start in range(0, n_starts, frame_step)]
    wav_slices = [slice(s.start * samples_per_frame, s.stop * samples_per_frame) for s in mel_slices]

    last = wav_slices[-1]
    coverage = (n_samples - last.start) / (last.stop - last.start)
    if coverage < min_pad_coverage and len(mel_slices) > 1:
        mel_slices, wav_slices = mel_slices[:-1], wav_slices[:-1]
    return wav_slices, mel_slices


@dataclass
class UtteranceEmbedding:

    embedding: np.ndarray  # (E,)
    partial_embeddings: np.ndarray  # (n_partials, E)
    wav_slices: list[slice]


class Encoder:
    """A loaded speaker encoder: the network, its hyperparameters and its device.

    >>> import numpy as np
    >>> from encoder.hparams import EncoderHParams
    >>> hp = EncoderHParams(hidden_size=16, embedding_size=8, num_layers=1)
    >>> encoder = Encoder(SpeakerEncoder(hp), hp)
    >>> wav = np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)
    >>> round(float(np.linalg.norm(encoder.embed_utterance(wav))), 4)
    1.0
    """

    def __init__(self, model: SpeakerEncoder, hparams: EncoderHParams, device: str | torch.device = "cpu",
                 path: Path | None = None, step: int | None = None) -> None:
        self.model = model.to(device).eval()
        self.hparams = hparams
        self.device = torch.device(device)
        self.path = path
        self.step = step

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> "Encoder":
        """Load RTVC's ``encoder.pt`` (or ``resemblyzer/pretrained.pt``) or one of our encoder files."""
        model, hparams, checkpoint = load_model(path, "encoder", EncoderHParams, build_speaker_encoder, device)
        step = checkpoint.get("step")
        return cls(model, hparams, device, Path(path), int(step) if isinstance(step, int) else None)

    @property
    def sample_rate(self) -> int:
        return self.hparams.sample_rate

    @property
    def embedding_size(self) -> int:
        return self.hparams.embedding_size

    def preprocess(self, wav_or_path: np.ndarray | str | Path, source_sr: int | None = None) -> np.ndarray:
        """Resample, normalise loudness and trim silences (:func:`encoder.audio.preprocess_wav`)."""
        return preprocess_wav(wav_or_path, source_sr, self.hparams)

    @torch.inference_mode()
    def embed_frames_batch(self, frames: np.ndarray) -> np.ndarray:
        """``(batch, n_frames, n_mels)`` -> ``(batch, E)``; :class:`utils.checkpoints.NonFiniteOutputError`
        when finite frames give non-finite embeddings."""
        array = np.ascontiguousarray(frames, dtype=np.float32)
        embeds = self.model(torch.from_numpy(array).to(self.device))
        if bool(np.isfinite(array).all()):  # otherwise the input, not the model, is to blame
            require_finite(embeds, "encoder", "speaker embeddings", self.path)
        return embeds.cpu().numpy()

    def embed_utterance_details(self, wav: np.ndarray, using_partials: bool = True) -> UtteranceEmbedding:
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1 or wav.size == 0:
            raise ValueError(f"expected a non-empty 1-D waveform, got shape {wav.shape}")
        if not using_partials:
            frames = wav_to_mel_spectrogram(wav, self.hparams)
            embedding = self.embed_frames_batch(frames[None])[0]
            return UtteranceEmbedding(embedding, embedding[None], [slice(0, len(wav))])

        wav_slices, mel_slices = compute_partial_slices(len(wav), self.hparams)
        padded_length = wav_slices[-1].stop
        if padded_length >= len(wav):
            wav = np.pad(wav, (0, padded_length - len(wav)))
        frames = wav_to_mel_spectrogram(wav, self.hparams)  # (T, 40), computed once for all windows
        batch = np.stack([frames[s] for s in mel_slices])  # (n_partials, 160, 40)
        partials = self.embed_frames_batch(batch)  # (n_partials, E)
        mean = partials.mean(axis=0)
        return UtteranceEmbedding(mean / np.linalg.norm(mean, 2), partials, wav_slices)

    def embed_utterance(self, wav: np.ndarray, using_partials: bool = True) -> np.ndarray:
        """``(E,)`` unit-norm embedding of one preprocessed 16 kHz utterance (RTVC's ``embed_utterance``)."""
        return self.embed_utterance_details(wav, using_partials).embedding


def average_embeddings(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of unit-norm embeddings, normalised back to unit length.

    >>> average_embeddings([np.array([1.0, 0.0]), np.array([0.0, 1.0])]).round(4)
    array([0.7071, 0.7071], dtype=float32)
    """
    stacked = np.stack([np.asarray(e, dtype=np.float32) for e in embeddings])  # (n, E)
    mean = stacked.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm == 0.0 or not np.isfinite(norm):
        raise ValueError("the embeddings cancel out or are not finite; cannot average them")
    return (mean / norm).astype(np.float32)
