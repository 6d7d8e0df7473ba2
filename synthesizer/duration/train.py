"""Train the phoneme duration synthesizer, alone or under ``torchrun``.

Usage::

    python -m synthesizer.duration.train <run_id> <syn_dir> [-m saved_models] [--hparams KEY=VALUE ...]
                                         [--oversample PATTERN=N ...] [--init_from FILE] [--max_steps N] [-f] ...

Data, phonemes and losses: docs/training.md.

>>> learning_rate(DurationHParams(learning_rate=1e-3, warmup_steps=100, lr_decay_half_life=1000), 50)
0.0005
>>> round(learning_rate(DurationHParams(learning_rate=1e-3, warmup_steps=100, lr_decay_half_life=1000), 1100), 6)
0.0005
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from synthesizer.duration.data import DurationDataset, frame_budget_batches
from synthesizer.duration.hparams import DurationHParams
from synthesizer.duration.model import DurationSynthesizerModel, DurationModelOutput, count_parameters
from synthesizer.duration.phonemes import PhonemeFrontEnd, SymbolTable
from utils.distributed import broadcast_buffers, wrap_model
from utils.ema import WeightAverage
from utils.arguments import training_parser
from utils.training import (TrainingError, TrainingOptions, TrainingSession, options_from_args, run_cli,
                            seed_everything, training_session)

MODEL_TYPE = "synthesizer"
ARCHITECTURE = "duration"
MAX_CONSECUTIVE_SKIPPED_UPDATES = 50


def learning_rate(hparams: DurationHParams, step: int) -> float:
    """Linear warm-up, then halving every ``lr_decay_half_life`` steps."""
    if step < hparams.warmup_steps:
        return hparams.learning_rate * max(step, 1) / hparams.warmup_steps
    return hparams.learning_rate * 0.5 ** ((step - hparams.warmup_steps) / hparams.lr_decay_half_life)


def alignment_prior_weight(hparams: DurationHParams, step: int) -> float:
    """1 at the start, fading linearly to 0 at ``alignment_prior_steps``."""
    if hparams.alignment_prior_steps <= 0:
        return 0.0
    return max(0.0, 1.0 - step / hparams.alignment_prior_steps)


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` ``(B, C, T)`` or ``(B, T)`` over positions where ``mask`` ``(B, 1, T)``/``(B, T)`` is 1."""
    mask = mask.to(values.dtype)
    channels = values.shape[1] if values.dim() == 3 else 1
    return (values * mask).sum() / (mask.sum() * channels).clamp(min=1)


def duration_losses(output: DurationModelOutput, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The three losses (see the module docstring) and their weighted total (without weights here)."""
    mels = batch["mels"]
    frame_mask = (torch.arange(mels.shape[2])[None, :] < batch["frame_lengths"][:, None])[:, None, :]  # (B, 1, T)
    symbol_mask = torch.arange(batch["ids"].shape[1])[None, :] < batch["lengths"][:, None]  # (B, S)
    mel = output.mel.float()
    error = mel - mels
    target_log_durations = torch.log1p(output.durations.float())
    losses = {
        "mel_l1": masked_mean(error.abs(), frame_mask),
        "mel_l2": masked_mean(error**2, frame_mask),
        "prior": masked_mean((output.means.float() - mels) ** 2, frame_mask),
        "duration": masked_mean((output.log_durations.float() - target_log_durations) ** 2, symbol_mask),
    }
    if output.variance is not None:
        spoken = (symbol_mask & (output.durations > 0))[:, None, :]  # (B, 1, S)
        squared = (output.variance.float() - output.variance_target.float()) ** 2  # (B, 2, S)
        losses["pitch"] = masked_mean(squared[:, :1], spoken)
        losses["energy"] = masked_mean(squared[:, 1:], spoken)
    if output.flow_velocity is not None:
        losses["flow"] = masked_mean((output.flow_velocity.float() - output.flow_goal.float()) ** 2, frame_mask)
    return losses


def total_loss(losses: dict[str, Tensor], hparams: DurationHParams) -> Tensor:
    total = (losses["mel_l1"] + losses["mel_l2"] + hparams.prior_loss_weight * losses["prior"]
             + hparams.duration_loss_weight * losses["duration"])
    if "pitch" in losses:
        total = total + hparams.variance_loss_weight * (losses["pitch"] + losses["energy"])
    if "flow" in losses:
        total = total + hparams.flow_loss_weight * losses["flow"]
    return total


def write_samples(session: TrainingSession, model: DurationSynthesizerModel, hparams: DurationHParams,
                  batch: dict[str, Tensor], output: DurationModelOutput, table: SymbolTable) -> None:
    """Alignment and mel plots, and Griffin-Lim audio of the first item, teacher-forced and free-running."""
    from vocoder.griffin_lim import inv_mel_spectrogram
    from synthesizer.plots import attention_figure, mel_comparison_figure, save_figure
    from utils.audio_io import save_audio

    n_symbols, n_frames = int(batch["lengths"][0]), int(batch["frame_lengths"][0])
    ids = batch["ids"][:1, :n_symbols]
    model.eval()
    free = model.infer(ids, batch["lengths"][:1], batch["speakers"][:1])
    model.train()
    free_frames = int(free.frame_lengths[0])
    text = table.decode(ids[0].tolist())
    folder = session.samples_dir
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"step-{session.step:06d}"
    title = f"Step {session.step}: {free_frames} frames free-running vs {n_frames} real\n{text[:90]}"
    path = output.path[0, :n_symbols, :n_frames].T.float().cpu().numpy()  # (T, S), the attention plot's orientation
    figure = attention_figure(path, title)
    save_figure(figure, f"{stem}-alignment.png")
    session.logger.figure("samples/alignment", figure, session.step)
    target = batch["mels"][0, :, :n_frames].numpy()
    teacher = output.mel[0, :, :n_frames].detach().float().numpy()
    figure = mel_comparison_figure(target, teacher, title, (-4.0, 4.0))
    save_figure(figure, f"{stem}-mel.png")
    mel_hparams = hparams.mel
    for name, mel in (("teacher", teacher), ("free", free.mel[0, :, :free_frames].float().numpy())):
        wav = inv_mel_spectrogram(mel, mel_hparams, rng=np.random.default_rng(0))
        if wav.size:
            save_audio(f"{stem}-{name}.wav", wav, mel_hparams.sample_rate)
            session.logger.audio(f"samples/{name}", wav, mel_hparams.sample_rate, session.step)
    (folder / f"{stem.name}-text.txt").write_text(text + "\n", encoding="utf-8")
    session.logger.flush()


def train(options: TrainingOptions, syn_dir: str | Path,
          oversample: Sequence[tuple[str, int]] = ()) -> DurationSynthesizerModel:
    """Train (or resume) the duration synthesizer on ``syn_dir``; returns the bare model."""
    with training_session(MODEL_TYPE, options) as session:
        return _train(session, options, Path(syn_dir), oversample)


def _check_architecture(checkpoint: dict | None) -> None:
    if checkpoint is not None and checkpoint.get("architecture") != ARCHITECTURE:
        raise TrainingError("The checkpoint to resume or start from is a Tacotron synthesizer, not a duration "
                            "synthesizer: train it with `python -m synthesizer.train`, or use another run_id.")


def _add_new_modules(checkpoint: dict, model: DurationSynthesizerModel) -> None:
    """Let ``--init_from`` start a model with a variance adaptor or flow post-net from one without them:
    the file's weights are kept and the new modules keep their fresh initialisation."""
    state = checkpoint.get("model_state")
    if not isinstance(state, dict):
        return
    new_prefixes = ("variance_", "flow.")
    for key, value in model.state_dict().items():
        if key not in state and key.startswith(new_prefixes):
            state[key] = value.detach().clone()


def _train(session: TrainingSession, options: TrainingOptions, syn_dir: Path,
           oversample: Sequence[tuple[str, int]]) -> DurationSynthesizerModel:
    context = session.context
    checkpoint = session.checkpoint_to_resume()
    _check_architecture(checkpoint)
    hparams = session.resolve_hparams(DurationHParams, checkpoint)
    table = SymbolTable(checkpoint["symbols"]) if checkpoint is not None else SymbolTable.default()
    front_end = PhonemeFrontEnd(table, hparams.cleaner_names)
    try:
        dataset = DurationDataset(syn_dir, front_end, hparams.max_mel_frames, oversample,
                                  with_pitch=hparams.variance_adaptor)
    except (OSError, ValueError) as error:
        raise TrainingError(str(error).rstrip(".") + ".") from None
    seed_everything(options.seed, context)
    rng = np.random.default_rng(options.seed)
    model = DurationSynthesizerModel(hparams, len(table)).to(context.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hparams.learning_rate, weight_decay=hparams.weight_decay)
    espeak_version = front_end.phonemizer.version

    if checkpoint is not None and not checkpoint.get("resume"):
        _add_new_modules(checkpoint, model)

    average = WeightAverage(model, hparams.ema_decay) if hparams.ema_decay > 0 else None

    def extra_state() -> dict:
        extra = {"architecture": ARCHITECTURE, "symbols": table.symbols, "espeak_version": espeak_version}
        return extra | ({"ema_state": average.state_dict()} if average is not None else {})

    session.attach(model, optimizer, hparams, checkpoint, extra_state=extra_state,
                   set_model_step=lambda m, step: m.step.fill_(step))
    if average is not None:
        # Resumed as saved, else started from the weights the run starts from.
        saved = checkpoint.get("ema_state") if checkpoint is not None and checkpoint.get("resume") else None
        if isinstance(saved, dict) and not average.load_state_dict(saved):
            warnings.warn("The saved weight average does not fit this model; it starts again.", stacklevel=1)
        if saved is None:
            average = WeightAverage(model, hparams.ema_decay)
    if context.is_main:
        print(f"Training the duration synthesizer on {len(dataset)} utterances from '{syn_dir}' "
              f"({count_parameters(model) / 1e6:.2f}M parameters, "
              f"{context.world_size} process(es) on {context.device}).",
              flush=True)
    model.train()
    trained = wrap_model(model, context)
    skipped = 0
    while not session.finished:
        batches = frame_budget_batches(dataset.frame_counts, hparams.batch_frames, hparams.max_batch_items, rng)
        for indices in batches[context.rank :: context.world_size]:
            batch = dataset.collate(indices)
            session.set_learning_rate(learning_rate(hparams, session.step))
            with session.autocast():
                output = trained(batch["ids"].to(context.device), batch["lengths"].to(context.device),
                                 batch["speakers"].to(context.device), batch["mels"].to(context.device),
                                 batch["frame_lengths"].to(context.device),
                                 alignment_prior_weight(hparams, session.step),
                                 batch["log_f0"].to(context.device) if "log_f0" in batch else None)
            losses = duration_losses(output, {k: v.to(context.device) for k, v in batch.items()})
            total = total_loss(losses, hparams)
            session.backward(total)
            session.unscale_gradients()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), hparams.clip_grad_norm)
            values: dict[str, float] = {}
            if torch.isfinite(grad_norm):
                session.optimizer_step()
                if average is not None:
                    average.update(model)
                skipped = 0
                values = {name: float(value.detach()) for name, value in losses.items()}
                values["grad_norm"] = float(grad_norm)
                with torch.no_grad():
                    predicted = torch.clamp(torch.exp(output.log_durations.float()) - 1, min=0).sum(1)
                    values["length_ratio"] = float((predicted / batch["frame_lengths"]).mean())
                    nonblank = (batch["ids"] != 0)
                    values["empty_phonemes"] = float(((output.durations == 0) & nonblank).sum() / nonblank.sum())
            else:
                session.optimizer.zero_grad(set_to_none=True)
                skipped += 1
                warnings.warn(f"The gradient norm is {float(grad_norm)} at step {session.step + 1}; "
                              "this update was skipped.", stacklevel=1)
                if skipped >= MAX_CONSECUTIVE_SKIPPED_UPDATES:
                    raise TrainingError(f"The gradients were NaN or infinite for {skipped} steps in a row; "
                                        "the run diverged: lower the learning rate or check the data.")
            session.end_step(values)
            if context.is_main and session.due(options.sample_every):
                try:
                    write_samples(session, model, hparams, batch, output, table)
                except OSError as error:
                    warnings.warn(f"Could not write the samples of step {session.step}: {error}", stacklevel=1)
            if session.finished:
                break
        session.epoch += 1
    broadcast_buffers(model, context)  # every rank returns rank 0's normalisation statistics
    return model


#: Largest --oversample factor: each repetition is a list entry, so a factor of 10**9 grew the list past 15 GB.
MAX_OVERSAMPLE = 100


def parse_oversample(items: Sequence[str]) -> list[tuple[str, int]]:
    """``["english-misc=3"]`` → ``[("english-misc", 3)]``; the key is a regular expression.

    >>> parse_oversample(["LJ=2", "english-misc=4"])
    [('LJ', 2), ('english-misc', 4)]
    """
    pairs = []
    for item in items:
        key, _, factor = item.rpartition("=")
        if not key or not (factor.isascii() and factor.isdigit()) or not 1 <= int(factor) <= MAX_OVERSAMPLE:
            raise TrainingError(f"--oversample takes PATTERN=N with N from 1 to {MAX_OVERSAMPLE}, not {item!r}.")
        try:
            re.compile(key)
        except re.error as error:
            raise TrainingError(f"--oversample pattern {key!r} is not a regular expression ({error}).") from None
        pairs.append((key, int(factor)))
    return pairs


def build_parser() -> argparse.ArgumentParser:
    parser = training_parser(
        "python -m synthesizer.duration.train",
        "Train the phoneme duration synthesizer (the offline default) on the output of synthesizer "
        "preprocessing. Run it again with the same run_id to resume.",
        init_from="duration-synthesizer weights (e.g. the shipped float16 file)", save_every=500,
        backup_every=5000, num_workers=0)
    parser.add_argument("syn_dir", type=Path, help="Synthesizer data folder with train.txt, mels/ and embeds/.")
    parser.add_argument("--oversample", nargs="*", default=[], metavar="PATTERN=N",
                        help="List utterances whose mel file name matches the regular expression PATTERN N times "
                             "(e.g. 'english-misc=4' 'mel-[0-9]+-=4' for LibriSpeech's numeric names).")
    return parser


def train_from_args(argv: list[str] | None = None) -> DurationSynthesizerModel:
    args = build_parser().parse_args(argv)
    return train(options_from_args(args), args.syn_dir, parse_oversample(args.oversample))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit status 0, or 1 with one ``error:`` line."""
    return run_cli(train_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
