"""Discretised mixture of logistics for WaveRNN's ``MOL`` mode: ``3K`` outputs per sample (logits,
means, log-scales; ``K = 10`` in RTVC), targets in [-1, 1] on ``num_classes`` levels.

>>> import torch
>>> params = torch.zeros(2, 30, 5)  # (B, 3K, T)
>>> sample_from_discretized_mix_logistic(params, generator=torch.Generator().manual_seed(0)).shape
torch.Size([2, 5])
>>> loss = discretized_mix_logistic_loss(params.transpose(1, 2), torch.zeros(2, 5, 1))
>>> bool(torch.isfinite(loss))
True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_SCALE_MIN = math.log(1e-14)  # -32.236...: keeps exp(-log_scale) finite in float32
_UNIFORM_EPS = 1e-5  # keeps log(u) and log(1 - u) finite when sampling


def _split(params: torch.Tensor, log_scale_min: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if params.size(-1) % 3 != 0:
        raise ValueError(f"mixture parameters need a multiple of 3 channels, got {params.size(-1)}")
    k = params.size(-1) // 3
    logits = params[..., :k]
    means = params[..., k : 2 * k]
    log_scales = params[..., 2 * k : 3 * k].clamp(min=log_scale_min)
    return logits, means, log_scales


def discretized_mix_logistic_loss(
    y_hat: torch.Tensor,
    y: torch.Tensor,
    num_classes: int = 65536,
    log_scale_min: float = LOG_SCALE_MIN,
    reduce: bool = True,
) -> torch.Tensor:
    """Negative log-likelihood of targets ``y (B, T[, 1])`` under the mixture ``y_hat (B, T, 3K)``;
    the mean when ``reduce``, else ``(B, T, 1)``.

    >>> y_hat = torch.zeros(1, 4, 30)
    >>> discretized_mix_logistic_loss(y_hat, torch.zeros(1, 4)).shape
    torch.Size([])
    """
    if y.dim() == y_hat.dim() - 1:
        y = y.unsqueeze(-1)
    logits, means, log_scales = _split(y_hat, log_scale_min)  # (B, T, K) each
    y = y.expand_as(means)  # (B, T, K)

    half_bin = 1.0 / (num_classes - 1)
    centered = y - means
    inv_scale = torch.exp(-log_scales)
    plus_in = inv_scale * (centered + half_bin)
    min_in = inv_scale * (centered - half_bin)
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)

    # Edge bins take the whole tail: log P(y <= -1 + bin) and log P(y >= 1 - bin), written stably.
    log_cdf_plus = plus_in - F.softplus(plus_in)
    log_one_minus_cdf_min = -F.softplus(min_in)
    # Where the bin probability underflows, approximate it by the density at the centre times the bin width.
    mid_in = inv_scale * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    log_bin = torch.where(
        cdf_delta > 1e-5,
        torch.log(cdf_delta.clamp(min=1e-12)),
        log_pdf_mid - math.log((num_classes - 1) / 2),
    )
    log_probs = torch.where(y < -0.999, log_cdf_plus, torch.where(y > 0.999, log_one_minus_cdf_min, log_bin))
    log_probs = log_probs + F.log_softmax(logits, dim=-1)  # (B, T, K)
    log_likelihood = torch.logsumexp(log_probs, dim=-1)  # (B, T)
    if reduce:
        return -log_likelihood.mean()
    return -log_likelihood.unsqueeze(-1)


def sample_from_discretized_mix_logistic(
    y: torch.Tensor,
    log_scale_min: float = LOG_SCALE_MIN,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One value per step ``(B, T)`` in [-1, 1] from mixture parameters ``(B, 3K, T)``, not rounded
    to the grid; ``generator=None`` uses torch's global RNG.

    >>> params = torch.zeros(1, 30, 3)
    >>> params[:, 10:20] = 0.5  # every component centred on 0.5 ...
    >>> params[:, 20:30] = -20.0  # ... with a tiny scale
    >>> sample_from_discretized_mix_logistic(params).tolist()
    [[0.5, 0.5, 0.5]]
    """
    params = y.transpose(1, 2)  # (B, T, 3K)
    logits, means, log_scales = _split(params, log_scale_min)  # (B, T, K) each

    # Gumbel-max trick: argmax(logits + Gumbel noise) is a draw from softmax(logits).
    u = torch.empty_like(logits).uniform_(_UNIFORM_EPS, 1.0 - _UNIFORM_EPS, generator=generator)
    component = (logits - torch.log(-torch.log(u))).argmax(dim=-1, keepdim=True)  # (B, T, 1)
    mean = means.gather(-1, component).squeeze(-1)  # (B, T)
    log_scale = log_scales.gather(-1, component).squeeze(-1)  # (B, T)

    # Inverse CDF of the logistic distribution.
    u = torch.empty_like(mean).uniform_(_UNIFORM_EPS, 1.0 - _UNIFORM_EPS, generator=generator)
    x = mean + torch.exp(log_scale) * (torch.log(u) - torch.log(1.0 - u))
    return x.clamp(-1.0, 1.0)
