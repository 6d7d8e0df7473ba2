"""DNSMOS: Microsoft's non-intrusive predictors of listener ratings of 16 kHz speech (docs/design.md).

>>> scorer = DnsmosScorer.load(threads=1)  # doctest: +SKIP
>>> scorer.score(wav)  # doctest: +SKIP
DnsmosScores(p808=3.61, ovrl=2.98, sig=3.41, bak=3.87)
>>> mean_scores([DnsmosScores(3.0, 2.0, 3.0, 4.0), DnsmosScores(4.0, 3.0, 3.5, 4.0)])
DnsmosScores(p808=3.5, ovrl=2.5, sig=3.25, bak=4.0)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.errors import UserError

DNSMOS_SAMPLE_RATE = 16000
#: Shortest clip scored: speechmos repeats a short clip until it lasts 9 s, so a few milliseconds
#: would be scored as a buzz.
MIN_SECONDS = 1.0


class DnsmosUnavailableError(UserError, RuntimeError):
    """speechmos or onnxruntime is not installed, or speechmos lacks its models."""


class DnsmosInputError(UserError, ValueError):
    """Audio that DNSMOS cannot score (empty, too short, silent, not finite, not mono, wrong rate)."""


@dataclass(frozen=True)
class DnsmosScores:
    """MOS-scale predictions: P.808 overall, and P.835 overall, signal and background."""

    p808: float
    ovrl: float
    sig: float
    bak: float


def mean_scores(scores: Sequence[DnsmosScores]) -> DnsmosScores:
    if not scores:
        raise ValueError("No DNSMOS scores to average.")
    names = ("p808", "ovrl", "sig", "bak")
    return DnsmosScores(*(float(np.mean([getattr(one, name) for one in scores])) for name in names))


def models_dir() -> Path:
    """The ``dnsmos_models`` folder of the installed speechmos; :class:`DnsmosUnavailableError` without it."""
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise DnsmosUnavailableError("DNSMOS needs the packages speechmos and onnxruntime "
                                     "(pip install -r requirements.txt).")
    folder = Path(list(spec.submodule_search_locations)[0]) / "dnsmos_models"
    missing = [name for name in ("sig_bak_ovr.onnx", "model_v8.onnx") if not (folder / name).is_file()]
    if missing:
        raise DnsmosUnavailableError(f"The speechmos package has no {', '.join(missing)} in '{folder}': "
                                     "reinstall it (pip install --force-reinstall speechmos).")
    return folder


@dataclass
class DnsmosScorer:
    """DNSMOS on the CPU: load once, score many clips (deterministic for a given thread count)."""

    model: object

    @classmethod
    def load(cls, threads: int = 0) -> "DnsmosScorer":
        """The standard (not personalised) DNSMOS models; ``threads`` 0 lets onnxruntime choose."""
        folder = models_dir()
        try:
            import onnxruntime
            from speechmos.dnsmos import DNSMOS
        except ImportError as error:
            raise DnsmosUnavailableError(f"DNSMOS cannot be loaded ({error}): "
                                         "pip install -r requirements.txt.") from None
        primary, p808 = folder / "sig_bak_ovr.onnx", folder / "model_v8.onnx"
        model = DNSMOS(str(primary), str(p808))
        if threads:
            # speechmos opens its sessions with onnxruntime's defaults (every core); reopen them with
            # the benchmark's thread count, as torch and Whisper get.
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            providers = ["CPUExecutionProvider"]
            model.onnx_sess = onnxruntime.InferenceSession(str(primary), options, providers=providers)
            model.p808_onnx_sess = onnxruntime.InferenceSession(str(p808), options, providers=providers)
        return cls(model)

    def score(self, wav: np.ndarray, sample_rate: int = DNSMOS_SAMPLE_RATE) -> DnsmosScores:
        """DNSMOS of 16 kHz mono float audio (clipped to ±1); :class:`DnsmosInputError` for audio it cannot score."""
        wav = np.asarray(wav, dtype=np.float32)
        if sample_rate != DNSMOS_SAMPLE_RATE:
            raise DnsmosInputError(f"DNSMOS scores {DNSMOS_SAMPLE_RATE} Hz audio, not {sample_rate} Hz: "
                                   "resample it first.")
        if wav.ndim != 1:
            raise DnsmosInputError(f"DNSMOS scores mono audio (one dimension), not an array of shape {wav.shape}.")
        if len(wav) < MIN_SECONDS * DNSMOS_SAMPLE_RATE:
            raise DnsmosInputError(f"The audio lasts {len(wav) / DNSMOS_SAMPLE_RATE:.2f} s: DNSMOS needs at least "
                                   f"{MIN_SECONDS:g} s of speech.")
        if not np.isfinite(wav).all():
            raise DnsmosInputError("The audio has NaN or infinite samples: DNSMOS cannot score it.")
        if not np.any(wav):
            raise DnsmosInputError("The audio is silent: DNSMOS cannot score it.")
        result = self.model(np.clip(wav, -1.0, 1.0), DNSMOS_SAMPLE_RATE, False)
        return DnsmosScores(float(result["p808_mos"]), float(result["ovrl_mos"]), float(result["sig_mos"]),
                            float(result["bak_mos"]))
