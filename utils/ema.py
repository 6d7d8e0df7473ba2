"""Exponential moving average of a model's weights, kept beside training and saved in its checkpoints.

>>> import torch
>>> model = torch.nn.Linear(1, 1, bias=False)
>>> start = float(model.weight)
>>> average = WeightAverage(model, decay=0.5)
>>> with torch.no_grad():
...     _ = model.weight.fill_(1.0)
>>> average.update(model)
>>> round(float(average.state_dict()["weight"]), 3) == round(0.5 + 0.5 * start, 3)
True
"""

from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    """``average ← decay · average + (1 − decay) · weights`` after every update; integer buffers are copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {key: value.detach().clone() for key, value in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                self.state[key].lerp_(value.detach(), 1.0 - self.decay)
            else:
                self.state[key].copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> bool:
        """Take a saved average if it fits this model (same keys and shapes); False leaves it as it is."""
        if set(state) != set(self.state) or any(state[k].shape != v.shape for k, v in self.state.items()):
            return False
        for key, value in state.items():
            self.state[key].copy_(value)
        return True
