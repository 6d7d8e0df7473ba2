"""WaveRNN: RTVC state_dict layout, training pass, folding/crossfade, and generation (exactness, seeds, edge cases)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils.mel import inv_preemphasis
from vocoder.audio import decode_mu_law
from vocoder.distribution import discretized_mix_logistic_loss, sample_from_discretized_mix_logistic
from vocoder.hparams import VocoderHParams
from vocoder.model import (
    Stretch2d,
    WaveRNN,
    build_wavernn,
    crossfade_windows,
    fold_with_overlap,
    xfade_and_unfold,
)

STATE_DICTS = Path(__file__).resolve().parents[2].parent / "shared" / "docs" / "rtvc_state_dicts.txt"
SMALL = dict(voc_rnn_dims=64, voc_fc_dims=64, voc_compute_dims=16, voc_res_out_dims=16, voc_res_blocks=2)
HOP = 200


def small_model(seed: int = 0, **changes) -> WaveRNN:
    torch.manual_seed(seed)
    return build_wavernn(VocoderHParams(**{**SMALL, **changes}))


def randomise_batch_norm(model: nn.Module, seed: int = 0) -> None:
    """Give BatchNorm non-trivial statistics so eval-mode inference differs from train mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=g) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) + 0.5)


def constant_label_model(label: int, mode_changes: dict | None = None) -> WaveRNN:
    """A model whose posterior is (numerically) a point mass on ``label``: its audio is known in closed form."""
    model = small_model(**(mode_changes or {}))
    with torch.no_grad():
        model.fc3.weight.zero_()
        model.fc3.bias.fill_(-100.0)
        model.fc3.bias[label] = 100.0
    return model


@pytest.fixture(scope="module")
def model() -> WaveRNN:
    m = small_model()
    randomise_batch_norm(m)
    return m.eval()


def mel(frames: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 80, frames, generator=g) * 2 - 1  # (1, 80, T) in the model's [-1, 1] domain


# ----------------------------------------------------------------------------------------- layout


def parse_listing(section: str) -> list[tuple[str, tuple[int, ...], str]]:
    if not STATE_DICTS.exists():
        pytest.skip(f"{STATE_DICTS} is not available")
    entries, inside = [], False
    for line in STATE_DICTS.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            inside = line.startswith(f"### {section}:")
            continue
        if inside and line and not line.startswith("#"):
            name, shape, dtype = line.split("\t")
            dims = tuple(int(d) for d in re.findall(r"\d+", shape))
            entries.append((name, dims, dtype))
    return entries


def test_state_dict_matches_rtvc_listing_in_order() -> None:
    expected = parse_listing("vocoder")
    assert len(expected) == 148
    state = build_wavernn(VocoderHParams()).state_dict()
    actual = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]
    assert actual == expected


def test_parameter_counts_match_rtvc() -> None:
    model = build_wavernn(VocoderHParams())
    assert sum(v.numel() for v in model.state_dict().values()) == 4_486_333
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 4_480_935
    # step is a frozen int64 Parameter, seen by model.parameters() (and hence by Adam) as in RTVC
    assert isinstance(model.step, nn.Parameter) and not model.step.requires_grad
    assert model.step.dtype == torch.int64 and any(p is model.step for p in model.parameters())


def test_upsample_layers_alternate_stretch_and_moving_average() -> None:
    hp = VocoderHParams()
    layers = build_wavernn(hp).upsample.up_layers
    assert [type(layer) for layer in layers] == [Stretch2d, nn.Conv2d] * 3
    for scale, conv in zip(hp.voc_upsample_factors, layers[1::2], strict=True):
        assert conv.weight.shape == (1, 1, 1, 2 * scale + 1)
        assert torch.all(conv.weight == 1.0 / (2 * scale + 1))
        assert conv.bias is None
    assert all(not list(layer.parameters()) for layer in layers[0::2])


def test_stretch2d_is_nearest_neighbour() -> None:
    x = torch.arange(6.0).view(1, 1, 2, 3)
    out = Stretch2d(x_scale=2, y_scale=3)(x)
    assert out.shape == (1, 1, 6, 6)
    expected = x.repeat_interleave(3, dim=2).repeat_interleave(2, dim=3)
    assert torch.equal(out, expected)
    assert out[0, 0, 5].tolist() == [3.0, 3.0, 4.0, 4.0, 5.0, 5.0]


def test_upsample_aligns_mels_and_aux_with_samples() -> None:
    model = small_model()
    frames = 9
    mels, aux = model.upsample(mel(frames))
    length = (frames - 2 * model.pad) * HOP
    assert mels.shape == (1, length, 80)
    assert aux.shape == (1, length, 16)
    # a constant mel stays constant after the moving averages (away from the zero-padded borders)
    const_mels, _ = model.upsample(torch.full((1, 80, frames), 0.5))
    assert torch.allclose(const_mels, torch.full_like(const_mels, 0.5), atol=1e-6)


# --------------------------------------------------------------------------------------- training


def test_forward_shapes_and_step_counter() -> None:
    model = small_model()
    frames, batch = 7, 3
    x = torch.rand(batch, (frames - 4) * HOP) * 2 - 1
    out = model(x, mel(frames).expand(batch, -1, -1))
    assert out.shape == (batch, (frames - 4) * HOP, 512)
    assert model.step.item() == 1
    model(x, mel(frames).expand(batch, -1, -1))
    assert model.step.item() == 2


def test_forward_is_causal_in_the_previous_sample_input() -> None:
    model = small_model().eval()
    x = torch.rand(1, 600) * 2 - 1
    conditioning = mel(7)
    base = model(x, conditioning)
    changed = x.clone()
    changed[0, 300] = -changed[0, 300]
    out = model(changed, conditioning)
    assert torch.equal(out[:, :300], base[:, :300])  # the past does not see the future
    assert not torch.allclose(out[:, 300:], base[:, 300:])


def test_forward_rejects_mismatched_lengths() -> None:
    model = small_model()
    with pytest.raises(ValueError, match="x must be"):
        model(torch.zeros(1, 500), mel(7))


def test_training_step_updates_weights_and_gradients_flow() -> None:
    model = small_model().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    labels = torch.randint(0, 512, (2, 600))
    x = 2 * labels.float() / 511 - 1
    before = model.fc3.weight.detach().clone()
    logits = model(x, mel(7).expand(2, -1, -1))
    loss = F.cross_entropy(logits.transpose(1, 2), labels)
    loss.backward()
    assert model.upsample.resnet.conv_in.weight.grad is not None
    optimizer.step()
    assert not torch.equal(before, model.fc3.weight)
    assert model.step.item() == 1  # Adam leaves the frozen step alone


def test_mixture_of_logistics_loss_and_sampling() -> None:
    model = small_model(voc_mode="MOL")
    x = torch.rand(2, 400) * 2 - 1
    y_hat = model(x, mel(6).expand(2, -1, -1))
    assert y_hat.shape == (2, 400, 30)
    loss = discretized_mix_logistic_loss(y_hat, x.unsqueeze(-1))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(model.fc3.weight.grad).all()

    # a sharp single-component mixture: the loss is small at its mean and large elsewhere
    params = torch.full((1, 1, 30), -20.0)
    params[..., 0] = 10.0  # logit of component 0
    params[..., 10] = 0.25  # mean of component 0
    params[..., 20] = -9.0  # log-scale of component 0
    near = discretized_mix_logistic_loss(params, torch.tensor([[0.25]]))
    far = discretized_mix_logistic_loss(params, torch.tensor([[-0.5]]))
    assert near < 12 < far

    params = params.transpose(1, 2).expand(4, -1, 50)  # (B, 30, T)
    samples = sample_from_discretized_mix_logistic(params, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 50)
    assert torch.allclose(samples, torch.full_like(samples, 0.25), atol=0.01)
    wide = torch.zeros(2, 30, 1000)
    a = sample_from_discretized_mix_logistic(wide, generator=torch.Generator().manual_seed(1))
    b = sample_from_discretized_mix_logistic(wide, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.abs().max() <= 1.0 and a.std() > 0.3


# ----------------------------------------------------------------------------- fold and crossfade


def rtvc_fold_count(total_len: int, target: int, overlap: int) -> int:
    count = (total_len - overlap) // (target + overlap)
    return count + (total_len - (count * (target + overlap) + overlap) != 0)


def test_fold_count_and_size_for_rtvc_defaults() -> None:
    folded = fold_with_overlap(torch.zeros(1, 40_000, 2), target=8000, overlap=800)
    assert folded.shape == (5, 9600, 2)
    for total_len in (801, 5000, 9600, 9601, 16_800, 17_600, 40_000, 123_457):
        n = fold_with_overlap(torch.zeros(1, total_len, 1), 8000, 800).shape[0]
        assert n == rtvc_fold_count(total_len, 8000, 800), total_len
    # RTVC produced no fold at all for sequences not longer than the overlap; we give one
    assert fold_with_overlap(torch.zeros(1, 200, 1), 8000, 800).shape == (1, 9600, 1)


def test_fold_contents_are_strided_windows_with_zero_padding() -> None:
    x = torch.arange(1, 1001, dtype=torch.float32).view(1, 1000, 1)
    folded = fold_with_overlap(x, target=300, overlap=50)  # stride 350, width 400
    assert folded.shape == (3, 400, 1)
    for i in range(3):
        start = i * 350
        window = x[0, start : start + 400, 0]
        assert torch.equal(folded[i, : len(window), 0], window)
        assert torch.all(folded[i, len(window) :, 0] == 0)


def test_fold_rejects_bad_geometry() -> None:
    with pytest.raises(ValueError):
        fold_with_overlap(torch.zeros(1, 100, 1), target=0, overlap=10)
    with pytest.raises(ValueError):
        fold_with_overlap(torch.zeros(2, 100, 1), target=10, overlap=10)


def test_crossfade_windows_are_equal_power() -> None:
    overlap = 800
    fade_in, fade_out = crossfade_windows(overlap)
    half = overlap // 2
    assert fade_in.shape == fade_out.shape == (overlap,)
    assert np.all(fade_in[:half] == 0)  # RNN warm-up is silent
    assert np.all(fade_out[overlap - half :] == 0)
    # the rising and falling curves are equal-power partners: squares sum to one
    np.testing.assert_allclose(fade_in[half:] ** 2 + fade_out[: overlap - half] ** 2, 1.0, atol=1e-12)
    assert fade_in[-1] == 1.0 and fade_out[0] == 1.0
    assert np.all(np.diff(fade_in) >= 0) and np.all(np.diff(fade_out) <= 0)


@pytest.mark.parametrize(("target", "overlap"), [(8000, 800), (300, 50), (250, 0)])
def test_unfold_of_fold_reproduces_the_signal_between_overlaps(target: int, overlap: int) -> None:
    total_len = 40_000 if target == 8000 else 2000
    ramp = torch.linspace(-1, 1, total_len).view(1, total_len, 1)
    for signal in (torch.ones(1, total_len, 1), ramp):
        folded = fold_with_overlap(signal, target, overlap)[..., 0].numpy()
        unfolded = xfade_and_unfold(folded, overlap)
        n = folded.shape[0]
        assert unfolded.shape == (n * (target + overlap) + overlap,)
        stride = target + overlap
        for i in range(n):  # each chunk's own target span is copied unchanged
            span = slice(i * stride + overlap, min(i * stride + overlap + target, total_len))
            np.testing.assert_array_equal(unfolded[span], signal[0, span, 0].numpy())
        if overlap:
            fade_in, fade_out = crossfade_windows(overlap)
            for i in range(1, n):  # seams carry the previous chunk's fade-out plus the next chunk's fade-in
                seam = slice(i * stride, i * stride + overlap)
                if seam.stop <= total_len:
                    np.testing.assert_allclose(unfolded[seam], signal[0, seam, 0].numpy() * (fade_out + fade_in))
    assert np.array_equal(folded, fold_with_overlap(ramp, target, overlap)[..., 0].numpy())  # not mutated


# ------------------------------------------------------------------------------------- generation


@pytest.mark.parametrize("frames", [1, 2, 5, 20, 21, 60])
@pytest.mark.parametrize("batched", [False, True])
def test_generate_length_for_short_and_long_mels(model: WaveRNN, frames: int, batched: bool) -> None:
    seed = torch.Generator().manual_seed(0)
    wav = model.generate(mel(frames), batched=batched, target=1000, overlap=100, generator=seed)
    assert wav.dtype == np.float32
    assert wav.shape == ((frames - 1) * HOP,)
    assert np.isfinite(wav).all()
    if len(wav):
        # |mu-law decoded| <= 1 and de-emphasis gains at most 1 / (1 - 0.97)
        assert np.abs(wav).max() <= 1 / (1 - 0.97) + 1e-3
        assert wav[-1] == 0.0  # the fade-out ends in silence


@pytest.mark.slow
def test_generate_with_rtvc_default_geometry(model: WaveRNN) -> None:
    calls = []
    wav = model.generate(mel(5), progress_callback=lambda *args: calls.append(args))
    assert wav.shape == (800,)
    assert calls[-1][:3] == (9600, 9600, 1)  # one fold of target + 2·overlap = 9600 steps


def test_generate_rejects_empty_and_misshapen_mels(model: WaveRNN) -> None:
    with pytest.raises(ValueError, match="0 frames"):
        model.generate(torch.zeros(1, 80, 0))
    with pytest.raises(ValueError, match=r"\(1, 80, T\)"):
        model.generate(torch.zeros(80, 5))
    with pytest.raises(ValueError, match=r"\(1, 80, T\)"):
        model.generate(torch.zeros(2, 80, 5))


def test_generate_is_repeatable_with_a_seed(model: WaveRNN) -> None:
    def run(seed: int) -> np.ndarray:
        return model.generate(mel(8), target=500, overlap=100, generator=torch.Generator().manual_seed(seed))

    first, second, other = run(1), run(1), run(2)
    assert np.array_equal(first, second)
    assert not np.allclose(first, other)
    torch.manual_seed(5)
    global_a = model.generate(mel(4), batched=False)
    torch.manual_seed(5)
    global_b = model.generate(mel(4), batched=False)
    assert np.array_equal(global_a, global_b)


def test_generate_restores_train_or_eval_mode_and_leaves_statistics_alone() -> None:
    model = small_model()
    randomise_batch_norm(model)
    for training in (True, False):
        model.train(training)
        stats = model.upsample.resnet.batch_norm.running_mean.clone()
        model.generate(mel(3), batched=False, generator=torch.Generator().manual_seed(0))
        assert model.training is training
        assert all(m.training is training for m in model.modules())
        assert torch.equal(stats, model.upsample.resnet.batch_norm.running_mean)
    # generation itself ran in eval mode: the result does not depend on the mode before the call
    model.train()
    a = model.generate(mel(3), batched=False, generator=torch.Generator().manual_seed(0))
    model.eval()
    b = model.generate(mel(3), batched=False, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(a, b)


def test_progress_callback_reports_every_100_steps_and_at_the_end(model: WaveRNN) -> None:
    calls = []
    model.generate(mel(10), target=500, overlap=100, progress_callback=lambda *a: calls.append(a))
    seq_len, batch = 700, 4  # (10·200 - 100) / 600 -> 4 folds of 700
    assert [c[0] for c in calls] == [0, 100, 200, 300, 400, 500, 600, seq_len]
    assert all(c[1] == seq_len and c[2] == batch and c[3] > 0 for c in calls)


def test_constant_posterior_gives_the_closed_form_waveform() -> None:
    label = 300
    model = constant_label_model(label)
    frames = 22
    wav = model.generate(mel(frames), batched=False, generator=torch.Generator().manual_seed(0))
    # every sample is the same mu-law value; decoded then de-emphasised it is a geometric rise
    value = 2 * label / 511 - 1
    linear = np.sign(value) / 511 * (512 ** abs(value) - 1)
    n = np.arange((frames - 1) * HOP)
    expected = linear * (1 - 0.97 ** (n + 1)) / (1 - 0.97)
    expected[-4000:] *= np.linspace(1, 0, 4000)
    np.testing.assert_allclose(wav, expected, rtol=1e-5, atol=1e-7)
    assert np.abs(wav).max() <= 1.5

    # batched: the same value chunked and crossfaded in the mu-law domain, then decoded
    target, overlap = 1000, 200
    wav = model.generate(mel(frames), target=target, overlap=overlap, generator=torch.Generator().manual_seed(0))
    n_folds = -(-(frames * HOP - overlap) // (target + overlap))
    chunks = np.full((n_folds, target + 2 * overlap), np.float32(value), dtype=np.float64)
    expected = inv_preemphasis(decode_mu_law(xfade_and_unfold(chunks, overlap), 512, from_labels=False), 0.97)
    expected = expected[: (frames - 1) * HOP]
    expected[-4000:] *= np.linspace(1, 0, 4000)
    np.testing.assert_allclose(wav, expected, rtol=1e-5, atol=1e-7)
    assert np.abs(wav).max() <= 1.5


def test_short_output_fades_over_its_whole_length() -> None:
    model = constant_label_model(300)
    wav = model.generate(mel(3), batched=False, generator=torch.Generator().manual_seed(0))
    value = 2 * 300 / 511 - 1
    linear = np.sign(value) / 511 * (512 ** abs(value) - 1)
    n = np.arange(400)
    expected = linear * (1 - 0.97 ** (n + 1)) / (1 - 0.97) * np.linspace(1, 0, 400)
    np.testing.assert_allclose(wav, expected, rtol=1e-5, atol=1e-7)


def reference_generate(model: WaveRNN, mels: torch.Tensor, batched: bool, target: int, overlap: int) -> np.ndarray:
    """RTVC's documented algorithm written out plainly (Categorical sampling, GRUCells, list of steps)."""
    cells = []
    for gru in (model.rnn1, model.rnn2):
        cell = nn.GRUCell(gru.input_size, gru.hidden_size)  # default init draws from the global RNG
        weights = {"weight_ih": gru.weight_ih_l0, "weight_hh": gru.weight_hh_l0}
        cell.load_state_dict({**weights, "bias_ih": gru.bias_ih_l0, "bias_hh": gru.bias_hh_l0})
        cells.append(cell)
    model.eval()
    with torch.no_grad():
        padded = torch.cat([torch.zeros(1, 80, 2), mels, torch.zeros(1, 80, 2)], dim=2)
        m, aux = model.upsample(padded)
        total = m.shape[1]
        if batched:
            n = (total - overlap) // (target + overlap)
            if total - (n * (target + overlap) + overlap) != 0:
                n += 1
            width = target + 2 * overlap
            padded_len = n * (target + overlap) + overlap
            m = F.pad(m, (0, 0, 0, padded_len - total))
            aux = F.pad(aux, (0, 0, 0, padded_len - total))
            m = torch.stack([m[0, i * (target + overlap) : i * (target + overlap) + width] for i in range(n)])
            aux = torch.stack([aux[0, i * (target + overlap) : i * (target + overlap) + width] for i in range(n)])
        b, steps, _ = m.shape
        h1, h2, x = torch.zeros(b, 64), torch.zeros(b, 64), torch.zeros(b, 1)
        a = [aux[:, :, 4 * k : 4 * (k + 1)] for k in range(4)]
        out = []
        for i in range(steps):
            x = model.I(torch.cat([x, m[:, i], a[0][:, i]], dim=1))
            h1 = cells[0](x, h1)
            x = x + h1
            h2 = cells[1](torch.cat([x, a[1][:, i]], dim=1), h2)
            x = x + h2
            x = F.relu(model.fc1(torch.cat([x, a[2][:, i]], dim=1)))
            x = F.relu(model.fc2(torch.cat([x, a[3][:, i]], dim=1)))
            probs = F.softmax(model.fc3(x), dim=1)
            sample = 2 * torch.distributions.Categorical(probs).sample().float() / 511.0 - 1.0
            out.append(sample)
            x = sample.unsqueeze(-1)
    y = torch.stack(out).transpose(0, 1).numpy().astype(np.float64)
    if batched:
        half = overlap // 2
        t = np.linspace(-1, 1, overlap - half)
        y[:, :overlap] *= np.concatenate([np.zeros(half), np.sqrt(0.5 * (1 + t))])
        y[:, -overlap:] *= np.concatenate([np.sqrt(0.5 * (1 - t)), np.zeros(half)])
        wav = np.zeros(b * (target + overlap) + overlap)
        for i in range(b):
            wav[i * (target + overlap) : i * (target + overlap) + target + 2 * overlap] += y[i]
    else:
        wav = y[0]
    wav = np.sign(wav) / 511 * (512 ** np.abs(wav) - 1)
    wav = inv_preemphasis(wav, 0.97)[: (mels.shape[-1] - 1) * HOP]
    fade = min(4000, len(wav))  # RTVC always fades 4000 samples (and crashes below 21 frames)
    wav[len(wav) - fade :] *= np.linspace(1, 0, fade)
    return wav


@pytest.mark.parametrize(("frames", "batched", "target", "overlap"), [(8, False, 0, 0), (21, True, 1500, 300)])
def test_generate_matches_the_reference_algorithm_sample_for_sample(
    model: WaveRNN, frames: int, batched: bool, target: int, overlap: int
) -> None:
    mels = mel(frames, seed=3)
    torch.manual_seed(11)
    expected = reference_generate(model, mels, batched, target, overlap)
    torch.manual_seed(11)
    actual = model.generate(mels, batched=batched, target=target, overlap=overlap)
    np.testing.assert_array_equal(actual, expected.astype(np.float32))


def test_mol_model_generates() -> None:
    model = small_model(voc_mode="MOL")
    wav = model.generate(mel(4), target=300, overlap=50, generator=torch.Generator().manual_seed(0))
    again = model.generate(mel(4), target=300, overlap=50, generator=torch.Generator().manual_seed(0))
    assert wav.shape == (600,) and wav.dtype == np.float32
    assert np.isfinite(wav).all() and np.abs(wav).max() <= 1 / (1 - 0.97) + 1e-3
    assert np.array_equal(wav, again)
    assert np.abs(wav[:-100]).max() > 0


@pytest.mark.slow
def test_full_size_model_generates_a_few_frames() -> None:
    torch.manual_seed(0)
    model = build_wavernn(VocoderHParams())
    wav = model.generate(mel(3), batched=False, generator=torch.Generator().manual_seed(0))
    assert wav.shape == (400,) and wav.dtype == np.float32 and np.isfinite(wav).all()
