"""Fast WaveRNN path (vocoder.fast): lengths, seeds, agreement with the exact path, sound crossfades.

Both paths sample, so they are compared where sampling is (numerically) deterministic: models whose
posterior is a point mass (a constant label, or labels set by the mel conditioning), and a random
model made peaked by scaling its output layer. The exact RTVC path stays the default and unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utils.mel import inv_preemphasis
from vocoder.audio import decode_mu_law
from vocoder.fast import FastWaveRNNGenerator, _crossfade, stretch_and_smooth, upsample_conditioning
from vocoder.hparams import VocoderHParams
from vocoder.inference import WaveRNNVocoder
from vocoder.model import UpsampleNetwork, WaveRNN, build_wavernn

pytestmark = pytest.mark.usefixtures("torch_single_thread")  # see conftest: 2 busy shared cores

SMALL = dict(voc_rnn_dims=64, voc_fc_dims=64, voc_compute_dims=16, voc_res_out_dims=16, voc_res_blocks=2)
HOP = 200


def small_model(seed: int = 0, **changes) -> WaveRNN:
    torch.manual_seed(seed)
    return build_wavernn(VocoderHParams(**{**SMALL, **changes})).eval()


def constant_label_model(label: int) -> WaveRNN:
    """Posterior is a point mass on ``label`` whatever the input: the waveform is known in closed form."""
    model = small_model()
    with torch.no_grad():
        model.fc3.weight.zero_()
        model.fc3.bias.fill_(-100.0)
        model.fc3.bias[label] = 100.0
    return model


def mel_driven_model(seed: int = 1) -> WaveRNN:
    """Labels set by the mel conditioning alone (through aux4 and fc2), one per frame, nearly surely."""
    model = small_model(seed)
    fc = model.fc2.in_features - model.aux_dims
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.fc2.weight[:, :fc] = 0.0  # forget the RNN: f2 = relu(W·aux4 + b)
        model.fc2.weight[:, fc:] = torch.randn(model.fc2.weight[:, fc:].shape, generator=g)
        model.fc2.bias.fill_(0.5)
        model.fc3.weight.mul_(200.0)  # a very peaked posterior
    return model


def peaked_model(scale: float, seed: int = 2) -> WaveRNN:
    """A random model whose output layer is scaled up: sampling is close to argmax, the RNN matters."""
    model = small_model(seed)
    with torch.no_grad():
        model.fc3.weight.mul_(scale)
        model.fc3.bias.mul_(scale)
    return model


def speech_like_mel(frames: int, seed: int = 0) -> torch.Tensor:
    """A smooth, varying mel in the model's [-1, 1] domain, ``(1, 80, frames)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[None, :]
    bands = np.arange(80)[:, None]
    mel = -0.4 + 0.3 * np.sin(2 * np.pi * (t / 37.0 + bands / 23.0)) + 0.05 * rng.standard_normal((80, frames))
    return torch.from_numpy(mel.astype(np.float32)).unsqueeze(0)


def log_mel_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of log-mel spectrograms (natural log), 80 bands, 16 kHz."""
    import librosa

    def logmel(x: np.ndarray) -> np.ndarray:
        s = librosa.feature.melspectrogram(y=x.astype(np.float32), sr=16000, n_fft=800, hop_length=200, n_mels=80)
        return np.log(s + 1e-5)

    return float(np.mean(np.abs(logmel(a) - logmel(b))))


def gen(g: FastWaveRNNGenerator, mel: torch.Tensor, seed: int = 0) -> np.ndarray:
    return g.generate(mel, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("frames", [1, 2, 20, 21, 300])
@pytest.mark.parametrize("dtype", [torch.float32, None])
def test_output_length_for_short_and_long_mels(frames: int, dtype) -> None:
    g = FastWaveRNNGenerator(small_model(), dtype=dtype, target=1000)
    wav = gen(g, speech_like_mel(frames))
    assert wav.dtype == np.float32 and wav.shape == ((frames - 1) * HOP,)
    assert np.isfinite(wav).all()


def test_same_seed_same_output_and_different_seeds_differ() -> None:
    g = FastWaveRNNGenerator(small_model(), target=1000)
    mel = speech_like_mel(60)
    a, b, c = gen(g, mel, 3), gen(g, mel, 3), gen(g, mel, 4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fold_plan_tiles_the_sequence() -> None:
    g = FastWaveRNNGenerator(small_model(), target=1000, crossfade=100, warmup=300)
    steps, folds = g._plan([10_000])
    outputs = [(f.start + f.keep_from, f.start + f.length) for f in folds]
    assert outputs[0][0] == 0 and outputs[-1][1] == 10_000 and folds[0].keep_from == 0
    for (b0, e0), (b1, e1), fold in zip(outputs, outputs[1:], folds[1:]):
        assert e0 - b1 == 100  # neighbours share exactly the crossfade span
        assert fold.keep_from == 300  # warm-up before the output starts
    assert steps == max(f.length for f in folds)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fast_loop_samples_from_the_models_own_posterior(dtype) -> None:
    """Teacher-forcing the model (its training pass) on the fast path's own samples gives posteriors whose
    argmax is what the fast path drew, wherever the posterior is peaked: the recombined weights
    (input layer folded into rnn1/rnn2/fc1, aux terms precomputed) compute the same network."""
    model = peaked_model(scale=3000.0)
    frames = 25
    mel = speech_like_mel(frames)
    g = FastWaveRNNGenerator(model, dtype=dtype, target=10_000, min_batch=1)  # one fold
    length = (frames - 1) * HOP
    with torch.inference_mode():
        steps, folds = g._plan([length])
        assert len(folds) == 1 and steps == length
        labels = g._run([g._conditioning(mel[0], length)], steps, folds, None, torch.Generator().manual_seed(0))[0]
        values = g._label_values[labels]
        previous = torch.cat([torch.zeros(1), values[:-1], torch.zeros(HOP)]).unsqueeze(0)  # (1, T·hop)
        logits = model(previous, torch.nn.functional.pad(mel, (model.pad, model.pad)))[0, :length]
    top2 = logits.topk(2, dim=1).values
    gap = top2[:, 0] - top2[:, 1]
    drawn_gap = top2[:, 0] - logits[torch.arange(length), labels]
    assert (drawn_gap == 0).float().mean() > 0.95
    # a draw other than the argmax only happens where the posterior is not peaked
    limit = 1.0 if dtype == torch.float32 else 4.0
    assert (drawn_gap[gap > 8.0] <= limit).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mel_driven_model_matches_the_exact_path_across_folds(dtype) -> None:
    model = mel_driven_model()
    mel = speech_like_mel(80)
    exact = model.generate(mel, batched=False, generator=torch.Generator().manual_seed(0))
    fast = gen(FastWaveRNNGenerator(model, dtype=dtype, target=1000, crossfade=200, warmup=400), mel)
    assert np.abs(exact).max() > 0.5  # a real, changing signal
    err = np.abs(fast - exact)
    assert np.mean(err < 1e-3) > 0.98 and np.median(err) < 1e-4, (np.mean(err < 1e-3), np.median(err))


def test_bf16_and_fp32_fast_paths_agree_on_a_peaked_model() -> None:
    model = mel_driven_model()
    mel = speech_like_mel(60, seed=3)
    a = gen(FastWaveRNNGenerator(model, dtype=torch.float32, target=1000), mel)
    b = gen(FastWaveRNNGenerator(model, dtype=torch.bfloat16, target=1000), mel)
    assert np.mean(np.abs(a - b) < 1e-3) > 0.98


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_no_dips_or_clicks_at_fold_boundaries_while_rtvc_dips(dtype) -> None:
    """A constant-label model gives a constant signal: the fast path keeps it constant through every
    crossfade; RTVC's unfold (exact batched path) drops to silence in every overlap (documented contrast)."""
    label = 400
    model = constant_label_model(label)
    frames = 120  # 23 800 samples: many folds
    mel = speech_like_mel(frames)
    level = float(inv_preemphasis(np.full(5000, decode_mu_law(np.array([label]), 512)[0]), 0.97)[-1])  # settled value
    g = FastWaveRNNGenerator(model, dtype=dtype, target=1000, crossfade=200, warmup=400)
    _, folds = g._plan([(frames - 1) * HOP])
    assert len(folds) > 10
    fast = gen(g, mel)
    body = fast[: len(fast) - model.hparams.fade_out_samples]
    checked = 0
    for fold in folds[1:]:
        begin = fold.start + fold.keep_from
        if begin + g.crossfade + 5 > len(body):
            break  # the last folds lie in the final fade-out
        checked += 1
        region = body[begin - 5 : begin + g.crossfade + 5]  # the crossfade and its edges
        assert np.abs(region - level).max() < 1e-3 * abs(level), begin
        assert np.abs(np.diff(region)).max() < 1e-3 * abs(level)
    assert checked >= 8
    # RTVC: target 1000, overlap 200 -> the first half of each overlap region is silent warm-up of the
    # incoming fold while the outgoing one has already faded out: a dip to (near) zero before de-emphasis.
    rtvc = model.generate(mel, batched=True, target=1000, overlap=200, generator=torch.Generator().manual_seed(0))
    rtvc_body = rtvc[: len(rtvc) - model.hparams.fade_out_samples]
    dips = rtvc_body[1200 : 1400]  # the first overlap: samples [1200, 1400)
    assert dips.min() < 0.5 * abs(level)


def test_crossfade_keeps_identical_signals_and_power_of_uncorrelated_ones() -> None:
    x = np.full(400, 0.3)
    np.testing.assert_allclose(_crossfade(x, x), x)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(20_000), rng.standard_normal(20_000)
    mixed = _crossfade(a, b)
    middle = mixed[9_000:11_000]
    assert 0.9 < np.mean(middle**2) < 1.1  # a linear fade would give 0.5 here


def test_quality_guard_log_mel_distance_to_the_exact_path() -> None:
    """On the same mel and seed the fast path is no further from the exact path than the exact path is
    from itself with another seed (both sample), within 25 % and an absolute 0.5 (log-mel, nats)."""
    model = peaked_model(scale=4.0, seed=5)
    mel = speech_like_mel(70)
    exact = model.generate(mel, batched=False, generator=torch.Generator().manual_seed(0))
    exact_other = model.generate(mel, batched=False, generator=torch.Generator().manual_seed(1))
    fast = gen(FastWaveRNNGenerator(model, target=1000), mel)
    baseline = log_mel_distance(exact, exact_other)
    distance = log_mel_distance(fast, exact)
    print(f"log-mel distance fast-exact {distance:.3f}, exact-exact (other seed) {baseline:.3f}")
    assert distance < 1.25 * baseline + 0.05, (distance, baseline)
    assert distance < 1.0, distance
    # the signal levels agree too
    assert abs(np.std(fast) / np.std(exact) - 1) < 0.2


def test_vocoder_fast_flag_and_exact_default_unchanged() -> None:
    vocoder = WaveRNNVocoder(small_model())
    mel = np.clip(speech_like_mel(50)[0].numpy() * 4, -4, 4)
    exact = vocoder.vocode(mel, generator=torch.Generator().manual_seed(0))  # 9 800 samples: RTVC's 2 folds
    direct = vocoder.model.generate(torch.from_numpy(mel / 4).unsqueeze(0), target=8000, overlap=800,
                                    batched=True, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(exact, direct)
    fast = vocoder.vocode(mel, fast=True, generator=torch.Generator().manual_seed(0))
    assert fast.shape == exact.shape and not np.array_equal(fast, exact)
    assert vocoder.fast_generator() is vocoder.fast_generator()  # cached while the weights stay


def test_vocode_batch_matches_lengths_and_mol_falls_back() -> None:
    vocoder = WaveRNNVocoder(small_model())
    mels = [np.full((80, frames), -2.0, np.float32) for frames in (1, 5, 90, 33)]
    wavs = vocoder.vocode_batch(mels, generator=torch.Generator().manual_seed(0))
    assert [w.shape for w in wavs] == [((f - 1) * HOP,) for f in (1, 5, 90, 33)]
    mol = WaveRNNVocoder(small_model(voc_mode="MOL"))
    wav = mol.vocode(mels[1], fast=True, generator=torch.Generator().manual_seed(0))
    assert wav.shape == (4 * HOP,)
    with pytest.raises(ValueError, match="RAW"):
        FastWaveRNNGenerator(mol.model)


# ---------------------------------------------------------------------------------------------------
# Streaming (generate_stream): growing folds, audio handed out as soon as it is final
# ---------------------------------------------------------------------------------------------------
def stream(g: FastWaveRNNGenerator, mel: torch.Tensor, seed: int = 0) -> list[np.ndarray]:
    return list(g.generate_stream(mel[0], generator=torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("samples_per_step", [8.0, 27.0, 60.0])
@pytest.mark.parametrize("length", [3_000, 40_000, 160_000])
def test_stream_plan_tiles_the_audio_and_meets_its_playback_deadlines(samples_per_step, length) -> None:
    g = FastWaveRNNGenerator(small_model(), dtype=torch.float32)
    rows = 64
    folds = g._stream_folds(length, rows, samples_per_step)
    x = g.stream_crossfade
    first = folds[0].length  # the step at which playback can start
    assert folds[0].start == 0 and folds[0].keep_from == 0
    assert folds[-1].start + folds[-1].length == length
    for previous, fold in zip(folds, folds[1:]):
        begin = fold.start + fold.keep_from
        assert previous.start + previous.length - begin == min(x, previous.length - previous.keep_from)
        assert fold.keep_from == min(g.stream_warmup, begin)
    if len(folds) <= rows and any(f.length < length for f in folds):  # a streaming plan, not the fallback
        for fold in folds:
            begin = fold.start + fold.keep_from
            assert fold.length <= first + begin / samples_per_step + 1e-9, (fold, first)
        # the first audio comes in less than half the batch path's whole generation
        if length >= 40_000:
            plain_steps, _ = g._plan([length])
            assert first < 0.5 * plain_steps, (first, plain_steps)


def test_stream_pieces_join_into_the_whole_and_come_early() -> None:
    model = small_model()
    g = FastWaveRNNGenerator(model, dtype=torch.float32)
    frames = 300
    pieces = stream(g, speech_like_mel(frames))
    wav = np.concatenate(pieces)
    assert wav.dtype == np.float32 and wav.shape == ((frames - 1) * HOP,) and np.isfinite(wav).all()
    assert len(pieces) > 5 and len(pieces[0]) < len(wav) / 4
    np.testing.assert_array_equal(wav, np.concatenate(stream(g, speech_like_mel(frames))))  # same seed, same audio
    assert not np.array_equal(wav, np.concatenate(stream(g, speech_like_mel(frames), seed=1)))
    for frames in (1, 2, 9):
        assert sum(len(p) for p in stream(g, speech_like_mel(frames))) == (frames - 1) * HOP


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_stream_matches_the_exact_path_on_a_mel_driven_model(dtype) -> None:
    model = mel_driven_model()
    mel = speech_like_mel(120)
    exact = model.generate(mel, batched=False, generator=torch.Generator().manual_seed(0))
    pieces = stream(FastWaveRNNGenerator(model, dtype=dtype), mel)
    assert len(pieces) > 3
    err = np.abs(np.concatenate(pieces) - exact)
    assert np.mean(err < 1e-3) > 0.98 and np.median(err) < 1e-4, (np.mean(err < 1e-3), np.median(err))


def test_stream_keeps_a_constant_signal_constant_through_every_crossfade() -> None:
    label = 400
    model = constant_label_model(label)
    frames = 200
    level = float(inv_preemphasis(np.full(5000, decode_mu_law(np.array([label]), 512)[0]), 0.97)[-1])
    g = FastWaveRNNGenerator(model, dtype=torch.float32)
    wav = np.concatenate(stream(g, speech_like_mel(frames)))
    body = wav[500 : len(wav) - model.hparams.fade_out_samples]  # after de-emphasis has risen from silence
    assert np.abs(body - level).max() < 1e-3 * abs(level)  # no dip, no bump, no click anywhere
    assert np.abs(np.diff(body)).max() < 1e-3 * abs(level)


def test_stream_quality_guard_log_mel_distance_to_the_exact_path() -> None:
    """The streaming path's shorter warm-up and crossfade keep it as close to the exact path as the
    exact path is to itself with another seed (same bounds as the batch path's guard)."""
    model = peaked_model(scale=4.0, seed=5)
    mel = speech_like_mel(70)
    exact = model.generate(mel, batched=False, generator=torch.Generator().manual_seed(0))
    exact_other = model.generate(mel, batched=False, generator=torch.Generator().manual_seed(1))
    streamed = np.concatenate(stream(FastWaveRNNGenerator(model), mel))
    baseline = log_mel_distance(exact, exact_other)
    distance = log_mel_distance(streamed, exact)
    print(f"log-mel distance stream-exact {distance:.3f}, exact-exact (other seed) {baseline:.3f}")
    assert distance < 1.25 * baseline + 0.05, (distance, baseline)
    assert abs(np.std(streamed) / np.std(exact) - 1) < 0.2


def test_vocode_stream_joins_into_vocode_length_and_exact_path_yields_once() -> None:
    vocoder = WaveRNNVocoder(small_model())
    mel = np.random.default_rng(0).uniform(-4, 4, (80, 150)).astype(np.float32)
    pieces = list(vocoder.vocode_stream(mel, generator=torch.Generator().manual_seed(0)))
    assert len(pieces) > 1 and sum(len(p) for p in pieces) == 149 * HOP
    exact = list(vocoder.vocode_stream(mel, fast=False, generator=torch.Generator().manual_seed(0)))
    assert len(exact) == 1
    np.testing.assert_array_equal(exact[0], vocoder.vocode(mel, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError):
        list(vocoder.vocode_stream(np.zeros((80, 0), np.float32)))


def test_stream_plan_of_very_long_audio_uses_target_folds_without_timing_huge_batches() -> None:
    g = FastWaveRNNGenerator(small_model(), dtype=torch.float32, min_batch=8)
    # The plan is a function of the measured step times: fixed ones keep it independent of the machine's load
    g._step_seconds.update({8: 2e-4, 10: 2.2e-4, 16: 2.8e-4})
    folds = g.plan_stream(200_000)  # more than 2·min_batch folds of `target` samples
    assert len(folds) > 16 and max(f.length for f in folds) <= g.target + g.stream_warmup + g.stream_crossfade
    assert folds[-1].start + folds[-1].length == 200_000
    assert set(g._step_seconds) <= {8, 10, 16}  # only the batch sizes it could plan with were timed
    short = g.plan_stream(20_000)
    assert len(short) <= 16 and short[0].length < 0.5 * max(f.length for f in short)


@pytest.mark.parametrize("scales", [(5, 5, 8), (4, 5, 10), (3,)])
def test_per_phase_upsampling_equals_the_networks_stretch_and_convolution(scales) -> None:
    torch.manual_seed(0)
    net = UpsampleNetwork(80, scales, compute_dims=16, res_blocks=1, res_out_dims=8, pad=2).eval()
    for conv in net.up_layers[1::2]:
        torch.nn.init.normal_(conv.weight)  # trained kernels are no longer moving averages
    mels = torch.randn(2, 80, 23)
    with torch.no_grad():
        want_mels, want_aux = net(mels)
        got_mels, got_aux = upsample_conditioning(net, mels)
    assert got_mels.shape == want_mels.shape and got_aux.shape == want_aux.shape
    assert torch.allclose(got_mels, want_mels, rtol=1e-5, atol=1e-4 * want_mels.abs().max().item())
    assert torch.equal(got_aux, want_aux)


def test_stretch_and_smooth_rejects_a_kernel_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="expected 11 taps"):
        stretch_and_smooth(torch.zeros(1, 80, 4), 5, torch.zeros(9))


def test_sentences_are_grouped_by_audio_length_in_order() -> None:
    g = FastWaveRNNGenerator(small_model(), max_batch_seconds=1.0)  # 16000 samples at 16 kHz
    assert g._groups([6000, 6000, 6000, 20000, 100, 100]) == [[0, 1], [2], [3], [4, 5]]
    with pytest.raises(ValueError, match="max_batch_seconds"):
        FastWaveRNNGenerator(small_model(), max_batch_seconds=0)


def test_batches_split_into_groups_keep_lengths_and_report_one_progress_scale() -> None:
    mels = [speech_like_mel(frames)[0] for frames in (60, 1, 45, 80, 30)]
    grouped = FastWaveRNNGenerator(small_model(), target=1000, max_batch_seconds=0.5)
    assert len(grouped._groups([(m.size(1) - 1) * HOP for m in mels if m.size(1) > 1])) > 1
    seen: list[tuple[int, int]] = []
    wavs = grouped.generate_batch(mels, progress_callback=lambda i, steps, batch, rate: seen.append((i, steps)),
                                  generator=torch.Generator().manual_seed(0))
    assert [len(w) for w in wavs] == [(m.size(1) - 1) * HOP for m in mels]
    assert all(np.isfinite(w).all() for w in wavs)
    totals = {steps for _, steps in seen}
    assert len(totals) == 1 and seen[-1][0] == totals.pop()
    assert [i for i, _ in seen] == sorted(i for i, _ in seen)
