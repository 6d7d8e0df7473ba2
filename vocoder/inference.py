"""Turn synthesizer mel spectrograms into waveforms with WaveRNN (RTVC's ``vocoder.pt`` or ours).

It implements :class:`vocoder.base.MelVocoder`: the synthesizer's ``(80, T)`` mel in [-4, 4] gives
float32 audio of exactly ``(T - 1)·hop`` samples at 16 kHz, and a ``torch.Generator`` makes it repeatable.

Examples
--------
>>> import numpy as np, tempfile, torch
>>> from pathlib import Path
>>> from vocoder.hparams import VocoderHParams
>>> from vocoder.model import build_wavernn
>>> hp = VocoderHParams(voc_rnn_dims=32, voc_fc_dims=32, voc_compute_dims=16, voc_res_out_dims=16,
...                     voc_res_blocks=1)
>>> path = Path(tempfile.mkdtemp()) / "vocoder.pt"
>>> WaveRNNVocoder(build_wavernn(hp)).save(path)
>>> vocoder = WaveRNNVocoder.from_checkpoint(path)
>>> mel = np.full((80, 4), -4.0, dtype=np.float32)  # silence in the synthesizer's range
>>> wav = vocoder.vocode(mel, batched=False, generator=torch.Generator().manual_seed(0))
>>> wav.shape, wav.dtype, vocoder.sample_rate
((600,), dtype('float32'), 16000)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from utils.checkpoints import (
    NonFiniteOutputError,
    load_model,
    make_payload,
    non_finite_message,
    require_finite,
    save_checkpoint,
)
from vocoder.base import MelVocoder, validate_mel  # noqa: F401 (validate_mel re-exported: callers check mels with it)
from vocoder.griffin_lim import GriffinLimVocoder  # noqa: F401 (re-exported: its home before the registry)
from vocoder.fast import FastWaveRNNGenerator
from vocoder.hparams import VocoderHParams
from vocoder.model import ProgressCallback, WaveRNN, build_wavernn

if TYPE_CHECKING:
    from vocoder.istft.inference import ISTFTVocoder


#: What the pipeline and the toolbox need from a vocoder (the name older code imports).
Vocoder = MelVocoder


class WaveRNNVocoder:
    """A loaded WaveRNN: RTVC's published ``vocoder.pt`` or one of our checkpoints.

    Parameters
    ----------
    model
        The network; its ``hparams`` describe it.
    path
        Where it was loaded from, if anywhere.
    exact
        Default of every method's ``fast``: True for RTVC's exact generation, False for the fast path.
        Unset (``None``), :meth:`vocode` is exact and :meth:`vocode_batch` / :meth:`vocode_stream` fast.

    Examples
    --------
    >>> vocoder = WaveRNNVocoder(build_wavernn(VocoderHParams()))
    >>> vocoder.sample_rate, vocoder.step, vocoder.streams
    (16000, 0, True)
    """

    kind = "wavernn"
    title = "WaveRNN"
    time_share = 0.7  # WaveRNN's sample-by-sample generation dominates a clone

    def __init__(self, model: WaveRNN, path: str | Path | None = None, exact: bool | None = None) -> None:
        self.model = model
        self.path = Path(path) if path is not None else None
        self.exact = exact
        self._fast: tuple[tuple, FastWaveRNNGenerator] | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu",
                        checkpoint: dict | None = None) -> WaveRNNVocoder:
        """Load RTVC's files (``{"model_state", "optimizer_state"}`` or a bare state_dict) or ours.

        RTVC files carry no hyperparameters and get the RTVC defaults; ours rebuild their own sizes.
        Optimizer state is ignored; ``checkpoint`` is the file's contents when already read. Raises
        :class:`utils.checkpoints.CheckpointError` on bad files.
        """
        model, _, _ = load_model(path, "vocoder", VocoderHParams, build_wavernn, device, checkpoint)
        return cls(model, path)

    def _use_fast(self, fast: bool | None, default: bool) -> bool:
        # An argument wins, then the vocoder's setting; with neither, each method keeps its historic default.
        if fast is not None:
            return fast
        return default if self.exact is None else not self.exact

    @property
    def streams(self) -> bool:
        return self._use_fast(None, True)

    def use_synthesized_mels(self) -> None:
        """Nothing to set up: WaveRNN was trained on GTA mels."""

    @property
    def hparams(self) -> VocoderHParams:
        """The hyperparameters the model was built with."""
        return self.model.hparams

    @property
    def step(self) -> int:
        """Training steps the weights have seen (RTVC stores it in the ``step`` entry)."""
        return int(self.model.step.item())

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz."""
        return self.hparams.sample_rate

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self.model.device

    def vocode(
        self,
        mel: np.ndarray,
        *,
        normalize: bool = True,
        batched: bool = True,
        target: int | None = None,
        overlap: int | None = None,
        progress_callback: ProgressCallback | None = None,
        generator: torch.Generator | None = None,
        fast: bool | None = None,
    ) -> np.ndarray:
        """Generate the waveform of one mel spectrogram.

        Parameters
        ----------
        mel
            ``(num_mels, T)`` synthesizer output in [-4, 4], ``T >= 1``.
        normalize
            Divide by ``mel_max_abs_value`` (4) to reach the model's [-1, 1] domain; pass False for mels
            already divided.
        batched
            Generate overlapping chunks in parallel (RTVC's default; much faster).
        target, overlap
            Chunk geometry; ``None`` takes ``hparams.voc_target`` / ``hparams.voc_overlap`` (8000 / 800).
        progress_callback
            ``(i, seq_len, batch_size, gen_rate_khz)``, see :meth:`vocoder.model.WaveRNN.generate`.
        generator
            Random source; ``None`` uses torch's global RNG.
        fast
            Use :class:`~vocoder.fast.FastWaveRNNGenerator` (several times faster: short folds with
            warm-up and a correlation-aware crossfade, precomputed conditioning, bf16 matrices where the
            hardware has them); ``batched``, ``target`` and ``overlap`` are then ignored. False keeps
            RTVC's exact algorithm (sample-for-sample identical for a seed). MOL models always take
            the exact path. ``None``: the vocoder's ``exact`` setting (unset: exact).

        Returns
        -------
        float32 waveform of ``(T - 1)·hop`` samples.

        Raises
        ------
        ValueError
            If ``mel`` is not a finite ``(num_mels, T)`` array with ``T >= 1``.
        utils.checkpoints.NonFiniteOutputError
            If the model makes NaN or infinite values (damaged weights); the message names the checkpoint.
        """
        array = validate_mel(mel, self.hparams.num_mels)
        if normalize:
            array = array / self.hparams.mel_max_abs_value
        mels = torch.from_numpy(array).unsqueeze(0)  # (1, num_mels, T)
        with self._naming_checkpoint():
            if self._use_fast(fast, False) and self.model.mode == "RAW":
                return self._finite(self.fast_generator().generate(mels, progress_callback, generator))
            target = self.hparams.voc_target if target is None else target
            overlap = self.hparams.voc_overlap if overlap is None else overlap
            if batched and array.shape[1] * self.hparams.hop_length <= target + 2 * overlap:
                # A single fold: batching gains nothing, but would generate the zero-padded rest of the fold
                # (up to 9 600 steps for a word) and fade in the first samples from silence.
                batched = False
            return self._finite(self.model.generate(
                mels,
                batched=batched,
                target=target,
                overlap=overlap,
                progress_callback=progress_callback,
                generator=generator,
            ))

    @contextlib.contextmanager
    def _naming_checkpoint(self) -> Iterator[None]:
        # The generators detect NaN inside their loops but do not know the file: add it here.
        try:
            yield
        except NonFiniteOutputError:
            raise NonFiniteOutputError(non_finite_message("vocoder", "audio", self.path)) from None

    def _finite(self, wav: np.ndarray) -> np.ndarray:
        require_finite(wav, "vocoder", "audio", self.path)
        return wav

    def vocode_batch(
        self,
        mels: Sequence[np.ndarray],
        *,
        normalize: bool = True,
        fast: bool | None = None,
        progress_callback: ProgressCallback | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> list[np.ndarray]:
        """Vocode several sentences together; returns one ``(T_i - 1)·hop`` float32 waveform per mel.

        With ``fast`` (the default) the folds of all sentences run as one batch through
        :class:`~vocoder.fast.FastWaveRNNGenerator`, which keeps the CPU's matrix units busier than one
        sentence at a time. Otherwise (or for MOL models) each mel goes through :meth:`vocode` in turn.
        ``seed`` seeds one generator for the whole batch when no ``generator`` is given.
        """
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        arrays = [validate_mel(mel, self.hparams.num_mels) for mel in mels]
        if not (self._use_fast(fast, True) and self.model.mode == "RAW"):
            return [
                self.vocode(a, normalize=normalize, fast=False, progress_callback=progress_callback,
                            generator=generator)
                for a in arrays
            ]
        scale = self.hparams.mel_max_abs_value if normalize else 1.0
        tensors = [torch.from_numpy(a / scale) for a in arrays]
        with self._naming_checkpoint():
            return [self._finite(wav) for wav in self.fast_generator().generate_batch(tensors, progress_callback,
                                                                                      generator)]

    def vocode_stream(
        self,
        mel: np.ndarray,
        *,
        normalize: bool = True,
        fast: bool | None = None,
        progress_callback: ProgressCallback | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[np.ndarray]:
        """The waveform of one mel in pieces, each yielded as soon as it is final (for playback).

        The fast path (:meth:`~vocoder.fast.FastWaveRNNGenerator.generate_stream`) starts with short
        folds, so its first piece comes after a fraction of the sentence's generation time; the exact
        path (``fast=False``) and MOL models yield the whole waveform once. The pieces join into what
        :meth:`vocode` returns for the same mel: ``(T - 1)·hop`` float32 samples.
        """
        array = validate_mel(mel, self.hparams.num_mels)
        if not (self._use_fast(fast, True) and self.model.mode == "RAW"):
            yield self.vocode(array, normalize=normalize, fast=False, progress_callback=progress_callback,
                              generator=generator)
            return
        scale = self.hparams.mel_max_abs_value if normalize else 1.0
        with self._naming_checkpoint():
            for piece in self.fast_generator().generate_stream(torch.from_numpy(array / scale), progress_callback,
                                                               generator):
                yield self._finite(piece)

    def fast_generator(self, **options: Any) -> FastWaveRNNGenerator:
        """The :class:`~vocoder.fast.FastWaveRNNGenerator` of this model, rebuilt when its weights change.

        ``options`` (``target``, ``crossfade``, ``warmup``, ``dtype``, ``block``) override the defaults.
        """
        params = list(self.model.parameters())
        key = (tuple(sorted(options.items(), key=str)), self.model.device,
               tuple((p.data_ptr(), p._version) for p in params))
        if self._fast is None or self._fast[0] != key:
            self._fast = (key, FastWaveRNNGenerator(self.model, **options))
        return self._fast[1]

    def save(self, path: str | Path, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Write our checkpoint format (RTVC's keys plus hyperparameters), atomically."""
        save_checkpoint(path, make_payload(self.model, "vocoder", self.hparams, optimizer))


def vocoder_architecture(path: str | Path) -> str:
    """``"wavernn"`` or ``"istft"``: which neural vocoder a file holds (see :func:`vocoder.registry.file_kind`)."""
    from vocoder.registry import file_kind

    return file_kind(path)


def load_vocoder(path: str | Path, device: str | torch.device = "cpu") -> "WaveRNNVocoder | ISTFTVocoder":
    """Load a neural vocoder file of either kind (see :func:`vocoder.registry.load`)."""
    from vocoder.registry import load

    return load(path, device)  # type: ignore[return-value]
