"""How well a Tacotron attends: a diagonal-alignment score in [0, 1].

A learned alignment reads the characters in order at a steady pace, so its attention lies near the
diagonal: 1.0 is fully within the band, about ``2 · band`` is uniform attention (untrained), near 0 is
attention stuck or jumping.

>>> import torch
>>> diagonal = torch.eye(4).unsqueeze(0)  # 4 steps reading 4 characters in order
>>> attention_diagonality(diagonal, torch.tensor([4]), torch.tensor([4])).tolist()
[1.0]
>>> stuck = torch.zeros(1, 4, 4); stuck[:, :, 0] = 1.0  # always on the first character
>>> attention_diagonality(stuck, torch.tensor([4]), torch.tensor([4])).tolist()
[0.5]
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def attention_diagonality(
    attention: Tensor | np.ndarray,
    text_lengths: Tensor | np.ndarray,
    step_lengths: Tensor | np.ndarray,
    band: float = 0.1,
) -> Tensor:
    """``(B,)`` share of attention within ``band`` (a fraction of the text length, at least one character)
    of the ideal diagonal, averaged over each item's real steps.

    ``attention`` is ``(B, S, Tc)`` (or ``(S, Tc)``); ``text_lengths`` and ``step_lengths`` mark the real
    characters and decoder steps.

    >>> uniform = torch.full((1, 10, 20), 1 / 20)
    >>> round(attention_diagonality(uniform, torch.tensor([20]), torch.tensor([10])).item(), 2)
    0.19
    """
    attention = torch.as_tensor(attention, dtype=torch.float32).detach()
    if attention.dim() == 2:
        attention = attention.unsqueeze(0)
    if attention.dim() != 3:
        raise ValueError(f"attention must be (batch, steps, characters), got shape {tuple(attention.shape)}")
    device = attention.device
    text_lengths = torch.as_tensor(text_lengths, device=device).reshape(-1).to(torch.float32)  # (B,)
    step_lengths = torch.as_tensor(step_lengths, device=device).reshape(-1).to(torch.float32)  # (B,)
    _, n_steps, n_chars = attention.shape
    steps = torch.arange(n_steps, device=device, dtype=torch.float32)  # (S,)
    chars = torch.arange(n_chars, device=device, dtype=torch.float32)  # (Tc,)

    safe_steps = step_lengths.clamp(min=1.0)
    ideal = (steps.unsqueeze(0) + 0.5) / safe_steps.unsqueeze(1) * text_lengths.unsqueeze(1)  # (B, S) in chars
    distance = (chars.view(1, 1, -1) + 0.5 - ideal.unsqueeze(2)).abs()  # (B, S, Tc)
    half_width = (band * text_lengths).clamp(min=1.0)  # (B,)
    in_band = distance <= half_width.view(-1, 1, 1)  # (B, S, Tc)
    real_chars = chars.unsqueeze(0) < text_lengths.unsqueeze(1)  # (B, Tc)
    real_steps = steps.unsqueeze(0) < step_lengths.unsqueeze(1)  # (B, S)

    mass = (attention * (in_band & real_chars.unsqueeze(1))).sum(dim=2)  # (B, S)
    score = (mass * real_steps).sum(dim=1) / safe_steps  # (B,)
    return score.clamp(0.0, 1.0)
