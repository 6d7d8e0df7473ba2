"""Ground-truth-aligned mels of the duration synthesizer (see :mod:`synthesizer.gta`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from synthesizer.duration.data import DurationDataset

if TYPE_CHECKING:
    from synthesizer.duration.inference import DurationSynthesizer


class DurationGtaSource:
    """Mels of the duration synthesizer along the monotonic alignment of the real mel.

    Its decoder and flow post-net as at inference (:meth:`DurationSynthesizerModel.ground_truth_aligned`),
    so the vocoder learns the synthesizer's output while timing, pitch and speaker stay the recording's.
    Utterances the synthesizer cannot align (fewer frames than phoneme slots) get no GTA mel.
    """

    def __init__(self, synthesizer: DurationSynthesizer, in_dir: Path, device: torch.device) -> None:
        self.model = synthesizer.model.to(device).eval()
        self.dataset = DurationDataset(in_dir, synthesizer.front_end, max_mel_frames=10**9,
                                       with_pitch=synthesizer.model.hparams.variance_adaptor)
        self.generator = torch.Generator(device).manual_seed(0)
        self.entries = [item.entry for item in self.dataset.items]
        self.hop_size, self.sample_rate = synthesizer.hparams.hop_size, synthesizer.sample_rate

    @torch.inference_mode()
    def batches(self, batches: list[list[int]]) -> Iterator[tuple[list[int], list[np.ndarray]]]:
        device = next(self.model.parameters()).device
        for indices in batches:
            batch = {name: value.to(device) for name, value in self.dataset.collate(indices).items()}
            mel = self.model.ground_truth_aligned(batch["ids"], batch["lengths"], batch["speakers"], batch["mels"],
                                                  batch["frame_lengths"], batch.get("log_f0"), self.generator)
            mels = mel.float().cpu().numpy()  # (B, num_mels, T_padded)
            yield indices, [np.ascontiguousarray(mels[row, :, :length].T, dtype=np.float32)  # (T_i, num_mels)
                            for row, length in enumerate(batch["frame_lengths"].tolist())]
