"""Ground-truth-aligned (GTA) mels of the Tacotron: teacher-forced post-net mels, frame for frame with the
recording (RTVC's procedure, reference §4.6), for training a vocoder on what the synthesizer really makes.

Every synthesizer kind gives its GTA mels through ``gta_source(in_dir, device, num_workers)``, an object
with ``entries``, ``hop_size``, ``sample_rate`` and ``batches(index_batches)``; :mod:`vocoder.preprocess`
writes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader

from synthesizer.data import SynthesizerBatch, SynthesizerCollator, SynthesizerDataset, mel_pad_value
from synthesizer.model import Tacotron, build_tacotron
from synthesizer.registry import SYNTHESIZERS

if TYPE_CHECKING:
    from synthesizer.inference import Synthesizer


def load_gta_synthesizer(path: str | Path | Synthesizer, device: torch.device | str = "cpu") -> Tacotron:
    """The synthesizer of ``path`` rebuilt with pre-net dropout 0, in eval mode, on ``device``.

    RTVC's pre-nets keep dropout on even in eval mode (quirk 11); for GTA the noise must go, so the
    model is built again from the checkpoint's hyperparameters with ``tts_dropout = 0`` and the
    checkpoint's weights (including its ``r``) are copied in. ``path`` may be an already loaded file.
    """
    tacotron = SYNTHESIZERS.kind_class(SYNTHESIZERS.default)  # RTVC's kind; its loader refuses other files
    loaded = tacotron.from_checkpoint(path, device="cpu") if isinstance(path, (str, Path)) else path
    model = build_tacotron(loaded.hparams.replace(tts_dropout=0.0),
                           num_chars=loaded.model.encoder.embedding.num_embeddings)
    model.load_state_dict(loaded.model.state_dict())
    return model.to(device).eval()


@torch.inference_mode()
def gta_mels(model: Tacotron, batch: SynthesizerBatch) -> list[np.ndarray]:
    """Teacher-forced post-net mels of a batch, each cropped to its ground-truth length: ``(T_i, num_mels)``."""
    device = next(model.parameters()).device
    batch = batch.to(device)
    output = model(batch.texts, batch.mels, batch.embeddings)
    postnet = output.postnet_mels.float().cpu().numpy()  # (B, num_mels, T_padded)
    return [
        np.ascontiguousarray(postnet[row, :, :length].T, dtype=np.float32)  # (T_i, num_mels)
        for row, length in enumerate(batch.mel_lengths.tolist())
    ]


class TacotronGtaSource:
    """Teacher-forced Tacotron mels (RTVC's GTA), in the padded batches of the synthesizer's data loader."""

    def __init__(self, loaded: Synthesizer, in_dir: Path, device: torch.device, num_workers: int) -> None:
        self.model = load_gta_synthesizer(loaded, device)
        self.dataset = SynthesizerDataset(in_dir, self.model.hparams)
        self.entries = self.dataset.entries
        self.hop_size, self.sample_rate = self.model.hparams.hop_size, self.model.hparams.sample_rate
        self.num_workers = num_workers

    def batches(self, batches: list[list[int]]) -> Iterator[tuple[list[int], list[np.ndarray]]]:
        loader = DataLoader(
            self.dataset, batch_sampler=batches, num_workers=self.num_workers,
            collate_fn=SynthesizerCollator(self.model.r, mel_pad_value(self.model.hparams)),
            pin_memory=next(self.model.parameters()).device.type == "cuda",
        )
        for batch in loader:
            yield batch.indices.tolist(), gta_mels(self.model, batch)
