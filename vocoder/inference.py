"""Turn synthesizer mel spectrograms into waveforms: WaveRNN (RTVC's ``vocoder.pt``) or Griffin-Lim.

Both vocoders take the synthesizer's ``(80, T)`` mel in [-4, 4], return float32 audio of exactly
``(T - 1)·hop`` samples at 16 kHz, and accept a ``torch.Generator`` so that a seed gives the same
audio every time. Either can stand where a :class:`Vocoder` is expected.

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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch

from utils.checkpoints import (
    CheckpointError,
    NonFiniteOutputError,
    load_model,
    make_payload,
    non_finite_message,
    require_finite,
    save_checkpoint,
)
from vocoder.base import validate_mel  # noqa: F401 (re-exported: callers check mels with it)
from vocoder.fast import FastWaveRNNGenerator
from vocoder.hparams import VocoderHParams
from vocoder.model import ProgressCallback, WaveRNN, build_wavernn

if TYPE_CHECKING:
    from synthesizer.hparams import SynthesizerHParams
    from vocoder.istft.inference import ISTFTVocoder


@runtime_checkable
class Vocoder(Protocol):
    """What the pipeline and the toolbox need from a vocoder."""

    @property
    def sample_rate(self) -> int:
        """Rate of the returned audio, in Hz."""
        ...

    def vocode(
        self,
        mel: np.ndarray,
        *,
        progress_callback: ProgressCallback | None = None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Waveform (float32, ``(T - 1)·hop`` samples) for a synthesizer mel ``(num_mels, T)`` in [-4, 4]."""
        ...


def _fit_length(wav: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad to ``length`` samples so every vocoder returns the same duration."""
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if len(wav) >= length:
        return wav[:length].copy()
    return np.pad(wav, (0, length - len(wav)))


class WaveRNNVocoder:
    """A loaded WaveRNN: RTVC's published ``vocoder.pt`` or one of our checkpoints.

    Parameters
    ----------
    model
        The network; its ``hparams`` describe it.
    path
        Where it was loaded from, if anywhere.

    Examples
    --------
    >>> vocoder = WaveRNNVocoder(build_wavernn(VocoderHParams()))
    >>> vocoder.sample_rate, vocoder.step
    (16000, 0)
    """

    def __init__(self, model: WaveRNN, path: str | Path | None = None) -> None:
        self.model = model
        self.path = Path(path) if path is not None else None
        self._fast: tuple[tuple, FastWaveRNNGenerator] | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> WaveRNNVocoder:
        """Load RTVC's files (``{"model_state", "optimizer_state"}`` or a bare state_dict) or ours.

        RTVC files carry no hyperparameters and get the RTVC defaults; ours rebuild their own sizes.
        Optimizer state is ignored. Raises :class:`utils.checkpoints.CheckpointError` on bad files.
        """
        model, _, _ = load_model(path, "vocoder", VocoderHParams, build_wavernn, device)
        return cls(model, path)

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
        fast: bool = False,
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
            the exact path.

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
            if fast and self.model.mode == "RAW":
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
        mels: list[np.ndarray],
        *,
        normalize: bool = True,
        fast: bool = True,
        progress_callback: ProgressCallback | None = None,
        generator: torch.Generator | None = None,
    ) -> list[np.ndarray]:
        """Vocode several sentences together; returns one ``(T_i - 1)·hop`` float32 waveform per mel.

        With ``fast`` (the default) the folds of all sentences run as one batch through
        :class:`~vocoder.fast.FastWaveRNNGenerator`, which keeps the CPU's matrix units busier than one
        sentence at a time. Otherwise (or for MOL models) each mel goes through :meth:`vocode` in turn.
        """
        arrays = [validate_mel(mel, self.hparams.num_mels) for mel in mels]
        if not (fast and self.model.mode == "RAW"):
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
        fast: bool = True,
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
        if not (fast and self.model.mode == "RAW"):
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


def _numpy_rng(generator: torch.Generator | None) -> np.random.Generator:
    """A NumPy generator seeded from torch's, so ``torch`` seeds also fix Griffin-Lim's random phase."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return np.random.default_rng(seed)


class GriffinLimVocoder:
    """Model-free fallback: phase reconstruction with Griffin-Lim (``synthesizer.audio.inv_mel_spectrogram``).

    Parameters
    ----------
    synth_hparams
        Signal settings of the synthesizer whose mels are inverted (defaults: RTVC's).
    n_iters
        Griffin-Lim iterations; ``None`` keeps the settings' count.
    exact_rtvc
        RTVC's settings (magnitude power 1.5, 60 plain iterations) instead of the tuned fast
        Griffin-Lim (:data:`synthesizer.audio.TUNED_GRIFFIN_LIM`: power 1.2, momentum 0.99, 32
        iterations), which keeps more of the voice.

    Examples
    --------
    >>> GriffinLimVocoder(n_iters=8).sample_rate
    16000
    >>> GriffinLimVocoder(exact_rtvc=True).settings
    GriffinLimSettings(power=1.5, momentum=0.0, n_iters=60)
    """

    def __init__(self, synth_hparams: SynthesizerHParams | None = None, n_iters: int | None = None,
                 exact_rtvc: bool = False) -> None:
        from dataclasses import replace

        from synthesizer.audio import TUNED_GRIFFIN_LIM, GriffinLimSettings
        from synthesizer.hparams import SynthesizerHParams

        hparams = synth_hparams if synth_hparams is not None else SynthesizerHParams()
        settings = GriffinLimSettings.rtvc(hparams) if exact_rtvc else TUNED_GRIFFIN_LIM
        if n_iters is not None:
            if n_iters < 1:
                raise ValueError(f"n_iters must be at least 1, got {n_iters}")
            settings = replace(settings, n_iters=n_iters)
        self.hparams = hparams
        self.settings = settings

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz."""
        return self.hparams.sample_rate

    def vocode(
        self,
        mel: np.ndarray,
        *,
        progress_callback: ProgressCallback | None = None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Invert a synthesizer mel ``(num_mels, T)`` in [-4, 4] to ``(T - 1)·hop`` float32 samples.

        ``progress_callback`` is called as ``(0, n_iters, 1, 0.0)`` before and
        ``(n_iters, n_iters, 1, rate_khz)`` after the inversion.
        """
        # Imported here: the synthesizer's audio module is heavier and not needed for WaveRNN.
        from synthesizer.audio import inv_mel_spectrogram

        array = validate_mel(mel, self.hparams.num_mels)
        n_iters = self.settings.n_iters
        length = (array.shape[1] - 1) * self.hparams.hop_size
        if progress_callback is not None:
            progress_callback(0, n_iters, 1, 0.0)
        start = time.perf_counter()
        wav = inv_mel_spectrogram(array, self.hparams, rng=_numpy_rng(generator), settings=self.settings)
        if not np.isfinite(wav).all():
            raise ValueError("Griffin-Lim produced non-finite audio from this mel spectrogram.")
        if progress_callback is not None:
            rate = length / max(time.perf_counter() - start, 1e-9) / 1000
            progress_callback(n_iters, n_iters, 1, rate)
        return _fit_length(wav, length)


NEURAL_VOCODERS = ("wavernn", "istft")


def vocoder_architecture(path: str | Path) -> str:
    """``"wavernn"`` or ``"istft"``: which neural vocoder a file holds (read without loading the model).

    Raises
    ------
    CheckpointError
        When the file is missing or not a checkpoint.
    """
    from utils.checkpoints import load_checkpoint_file
    from vocoder.istft.inference import checkpoint_architecture

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - old formats cannot be memory-mapped; the full reader explains failures
        checkpoint = load_checkpoint_file(path, "vocoder")
    # Another model's file (a synthesizer given as -v) must be named as such, not as an unknown vocoder.
    stored = checkpoint.get("model_type") if isinstance(checkpoint, dict) else None
    if isinstance(stored, str) and stored != "vocoder":
        article = "an" if stored[:1] in "aeiou" else "a"
        raise CheckpointError(f"The vocoder checkpoint '{path}' is {article} {stored} checkpoint, not a vocoder "
                              "checkpoint.")
    architecture = checkpoint_architecture(checkpoint)
    if architecture not in NEURAL_VOCODERS:
        raise CheckpointError(f"The vocoder checkpoint '{path}' holds an unknown vocoder architecture "
                              f"{architecture!r} (this version reads {', '.join(NEURAL_VOCODERS)}).")
    return architecture


def load_vocoder(path: str | Path, device: str | torch.device = "cpu") -> "WaveRNNVocoder | ISTFTVocoder":
    """Load a neural vocoder file of either kind: RTVC's or our WaveRNN, or our iSTFT vocoder.

    Raises
    ------
    CheckpointError
        Missing, damaged or mismatched files, as one sentence.
    """
    from vocoder.istft.inference import ISTFTVocoder

    if vocoder_architecture(path) == "istft":
        return ISTFTVocoder.from_checkpoint(path, device)
    return WaveRNNVocoder.from_checkpoint(path, device)
