"""Train the synthesizer (Tacotron) on preprocessed data, alone or under ``torchrun``.

Usage::

    python -m synthesizer.train <run_id> <syn_dir> [-m saved_models] [--hparams KEY=VALUE ...]
                                [--init_from synthesizer.pt] [--max_steps N] [-f] ...
    torchrun --nproc_per_node=4 -m synthesizer.train <run_id> <syn_dir> ...

Schedule, losses and what differs from RTVC: docs/training.md.

>>> schedule = parse_schedule([[2, 1e-3, 100, 8], [4, 5e-4, 300, 16]])
>>> session_for_step(schedule, 99).r, session_for_step(schedule, 100).r, session_for_step(schedule, 300)
(2, 4, None)
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from synthesizer.data import SynthesizerBatch, SynthesizerDataset, build_loader
from synthesizer.hparams import SynthesizerHParams, schedule_problem
from synthesizer.metrics import attention_diagonality
from synthesizer.model import Tacotron, TacotronOutput, build_tacotron
from synthesizer.text import sequence_to_text
from synthesizer.text.symbols import SYMBOLS
from utils.distributed import (
    DistributedContext,
    broadcast_buffers,
    broadcast_object,
    wrap_model,
)
from utils.arguments import training_parser
from utils.training import (TrainingError, TrainingOptions, TrainingSession, epochs_of_batches, options_from_args,
                            run_cli, seed_everything, training_session)

MODEL_TYPE = "synthesizer"

#: Give up when this many updates in a row had NaN/inf gradients: the run has diverged.
MAX_CONSECUTIVE_SKIPPED_UPDATES = 50


# ----------------------------------------------------------------------------------------------
# Schedule


class ScheduleSession(NamedTuple):
    """One row of ``tts_schedule``: train with ``r`` and ``learning_rate`` until ``until_step``."""

    index: int
    r: int
    learning_rate: float
    until_step: int
    batch_size: int


def parse_schedule(rows: Sequence[Sequence[Any]], max_r: int = 20) -> list[ScheduleSession]:
    """Validate ``tts_schedule`` rows ``(r, lr, until_step, batch_size)``; :class:`TrainingError` if not.

    >>> parse_schedule([(2, 1e-3, 20_000, 12)])
    [ScheduleSession(index=0, r=2, learning_rate=0.001, until_step=20000, batch_size=12)]
    """
    problem = schedule_problem(rows, max_r)  # the same rule the hyperparameters are checked with
    if problem is not None:
        raise TrainingError(f"tts_schedule: {problem}.")
    return [ScheduleSession(index, int(r), float(lr), int(until), int(batch))
            for index, (r, lr, until, batch) in enumerate(rows)]


def session_for_step(schedule: Sequence[ScheduleSession], step: int) -> ScheduleSession | None:
    """The session that trains step ``step + 1``: the first whose end lies beyond ``step``; None when done.

    >>> schedule = parse_schedule([[2, 1e-3, 10, 4], [3, 1e-4, 20, 4]])
    >>> [session_for_step(schedule, step).index for step in (0, 9, 10, 19)]
    [0, 0, 1, 1]
    """
    for session in schedule:
        if session.until_step > step:
            return session
    return None


# ----------------------------------------------------------------------------------------------
# Loss


class TacotronLosses(NamedTuple):
    """The four terms of RTVC's loss and their sum (scalar tensors)."""

    total: Tensor
    mel_mse: Tensor
    mel_l1: Tensor
    postnet_mse: Tensor
    stop: Tensor

    def as_floats(self) -> dict[str, float]:
        values = self._asdict()
        values["loss"] = values.pop("total")
        return {name: float(value.detach()) for name, value in values.items()}


def masked_mean(values: Tensor, frame_mask: Tensor) -> Tensor:
    """Mean of ``values`` (B, C, T) over real frames only (``frame_mask`` (B, T), 1 = real).

    >>> values = torch.tensor([[[1.0, 3.0, 100.0]]])
    >>> masked_mean(values, torch.tensor([[1.0, 1.0, 0.0]])).item()
    2.0
    """
    mask = frame_mask.unsqueeze(1).to(values.dtype)  # (B, 1, T)
    n_values = mask.sum() * values.size(1)
    return (values * mask).sum() / n_values.clamp(min=1.0)


def stop_step_targets(batch: SynthesizerBatch, r: int) -> tuple[Tensor, Tensor]:
    """Stop targets and mask per decoder step, ``(B, T // r)`` float32 each (docs/training.md).

    >>> from synthesizer.data import SynthesizerCollator, SynthesizerItem
    >>> item = lambda frames: SynthesizerItem(torch.tensor([5, 1]), torch.zeros(1, frames), torch.ones(2), 0)
    >>> batch = SynthesizerCollator(2, -4.0)([item(5), item(2)])  # T = 6, three steps of two frames
    >>> targets, mask = stop_step_targets(batch, 2)
    >>> targets.tolist(), mask.tolist()
    ([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]], [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    """
    n_steps = batch.stop_targets.size(1) // r
    targets = batch.stop_targets[:, r - 1 :: r][:, :n_steps]  # (B, S) target of each step's last frame
    starts = torch.arange(n_steps, device=batch.mel_lengths.device) * r  # (S,) first frame of each step
    mask = (starts.unsqueeze(0) <= batch.mel_lengths.unsqueeze(1)).to(torch.float32)  # (B, S)
    return targets, mask


#: Probabilities are clamped to [ε, 1 − ε] inside the logs: a saturated sigmoid (exactly 0 or 1 in
#: float32) then costs at most −log ε ≈ 16 and gets a zero, not a NaN, gradient.
STOP_EPSILON = 1e-7


def binary_cross_entropy(probabilities: Tensor, targets: Tensor) -> Tensor:
    """Elementwise BCE of probabilities in float32, safe under autocast and with saturated inputs.

    >>> losses = binary_cross_entropy(torch.tensor([0.5, 1.0, 1.0]), torch.tensor([1.0, 1.0, 0.0]))
    >>> [round(value, 4) + 0.0 for value in losses.tolist()]
    [0.6931, 0.0, 16.1181]
    """
    probabilities = probabilities.float()
    targets = targets.float()
    log_p = torch.log(probabilities.clamp(min=STOP_EPSILON))
    log_not_p = torch.log((1.0 - probabilities).clamp(min=STOP_EPSILON))
    return -(targets * log_p + (1.0 - targets) * log_not_p)


def guided_attention_loss(attention: Tensor, text_lengths: Tensor, step_lengths: Tensor, sigma: float) -> Tensor:
    """Mean attention mass of ``(B, S, N)`` weights far from the diagonal, over each item's real region;
    ``sigma`` is the tolerated band's width as a fraction of the text and utterance (docs/training.md).

    >>> diagonal = torch.eye(4).unsqueeze(0)  # (1, 4, 4)
    >>> lengths = torch.tensor([4])
    >>> float(guided_attention_loss(diagonal, lengths, lengths, 0.2)) < 0.01
    True
    >>> anti = torch.eye(4).flip(1).unsqueeze(0)
    >>> float(guided_attention_loss(anti, lengths, lengths, 0.2)) > 0.3
    True
    """
    attention = attention.float()
    n_steps, n_chars = attention.shape[1:]
    device = attention.device
    steps = torch.arange(n_steps, device=device).unsqueeze(0) / step_lengths.clamp(min=1).unsqueeze(1).float()  # (B, S)
    chars = torch.arange(n_chars, device=device).unsqueeze(0) / text_lengths.clamp(min=1).unsqueeze(1).float()  # (B, N)
    distance = chars.unsqueeze(1) - steps.unsqueeze(2)  # (B, S, N)
    penalty = 1.0 - torch.exp(-distance.pow(2) / (2.0 * sigma**2))
    real_chars = torch.arange(n_chars, device=device).unsqueeze(0) < text_lengths.unsqueeze(1)
    real_chars = real_chars.unsqueeze(1)  # (B, 1, N)
    penalty = torch.where(real_chars, penalty, torch.ones_like(penalty))
    real_steps = torch.arange(n_steps, device=device).unsqueeze(0) < step_lengths.unsqueeze(1)
    real_steps = real_steps.to(attention.dtype)  # (B, S)
    # Normalised by the number of real decoder steps: each step's weights sum to one.
    return (attention * penalty * real_steps.unsqueeze(2)).sum() / real_steps.sum().clamp(min=1.0)


def tacotron_loss(output: TacotronOutput, batch: SynthesizerBatch, r: int) -> TacotronLosses:
    """RTVC's loss with padding masked out, for a teacher-forced pass at ``r`` frames per step
    (docs/training.md)."""
    target = batch.mels.float()  # (B, M, T)
    mels = output.mels.float()
    postnet = output.postnet_mels.float()
    mel_mse = masked_mean((mels - target) ** 2, batch.frame_mask)
    mel_l1 = masked_mean((mels - target).abs(), batch.frame_mask)
    postnet_mse = masked_mean((postnet - target) ** 2, batch.frame_mask)

    step_targets, step_mask = stop_step_targets(batch, r)  # (B, S)
    step_probabilities = output.stop[:, ::r][:, : step_targets.size(1)]  # (B, S), one value per step
    stop_terms = binary_cross_entropy(step_probabilities, step_targets) * step_mask
    stop = stop_terms.sum() / step_mask.sum().clamp(min=1.0)
    return TacotronLosses(mel_mse + mel_l1 + postnet_mse + stop, mel_mse, mel_l1, postnet_mse, stop)


# ----------------------------------------------------------------------------------------------
# Samples


def write_character_embeddings_tsv(path: Path) -> Path:
    """RTVC's ``metas/CharacterEmbeddings.tsv``: one symbol per line (space as ``\\s``), for TensorBoard's projector."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(("\\s" if symbol == " " else symbol) + "\n" for symbol in SYMBOLS), encoding="utf-8")
    return path


def write_samples(
    session: TrainingSession,
    hparams: SynthesizerHParams,
    batch: SynthesizerBatch,
    output: TacotronOutput,
    r: int,
) -> dict[str, Path]:
    """Plots, predicted mel and Griffin-Lim audio of the batch's first item (teacher-forced) into
    ``<run>/samples/step-<s>-*`` and TensorBoard, on rank 0; the paths by kind."""
    from vocoder.griffin_lim import inv_mel_spectrogram
    from synthesizer.plots import attention_figure, mel_comparison_figure, save_figure
    from utils.audio_io import AudioError, save_audio

    step = session.step
    n_frames = int(batch.mel_lengths[0])
    n_chars = int(batch.text_lengths[0])
    n_steps = math.ceil(n_frames / r)
    attention = output.attention[0, :n_steps, :n_chars].detach().float().cpu().numpy()  # (S, Tc)
    predicted = output.postnet_mels[0, :, :n_frames].detach().float().cpu().numpy()  # (M, T)
    target = batch.mels[0, :, :n_frames].detach().float().cpu().numpy()  # (M, T)
    text = sequence_to_text(batch.texts[0, :n_chars].tolist())
    score = float(attention_diagonality(attention, [n_chars], [n_steps])[0])

    folder = session.samples_dir
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"step-{step:06d}"
    title = f"Step {step}, r={r}, diagonality {score:.2f}\n{text}"
    paths: dict[str, Path] = {}
    figure = attention_figure(attention, title)
    paths["attention"] = save_figure(figure, f"{stem}-attention.png")
    session.logger.figure("samples/attention", figure, step)
    figure = mel_comparison_figure(target, predicted, title, (-hparams.max_abs_value, hparams.max_abs_value))
    paths["mel_plot"] = save_figure(figure, f"{stem}-mel-spectrogram.png")
    session.logger.figure("samples/mel", figure, step)
    paths["mel"] = stem.with_name(stem.name + "-mel-prediction.npy")
    np.save(paths["mel"], predicted.T.astype(np.float32))  # (T, M), the orientation of the training mels
    paths["text"] = stem.with_name(stem.name + "-text.txt")
    paths["text"].write_text(text + "\n", encoding="utf-8")
    session.logger.text("samples/text", text, step)
    session.logger.scalars({"samples/attention_diagonality": score}, step)

    wav = inv_mel_spectrogram(predicted, hparams, rng=np.random.default_rng(0))
    if wav.size:
        try:
            paths["wav"] = save_audio(f"{stem}-wave-from-mel.wav", wav, hparams.sample_rate)
        except AudioError as error:
            warnings.warn(f"Could not write the sample audio: {error}", stacklevel=2)
        session.logger.audio("samples/griffin_lim", wav, hparams.sample_rate, step)
    session.logger.flush()
    return paths


# ----------------------------------------------------------------------------------------------
# Training


def check_symbols(checkpoint: dict | None, path: Path | None) -> None:
    """Refuse checkpoints trained with another symbol table (their embedding rows mean other letters)."""
    symbols = (checkpoint or {}).get("symbols")
    if symbols is not None and symbols != "".join(SYMBOLS):
        raise TrainingError(f"The synthesizer checkpoint '{path}' was trained with another text symbol table, "
                            "so its character embedding would read the wrong letters.")


def _read_model_step(model: nn.Module) -> int:
    return int(model.step.item())  # RTVC keeps the step in this buffer


def _write_model_step(model: nn.Module, step: int) -> None:
    with torch.no_grad():
        model.step.fill_(step)


def _shared_seed(options: TrainingOptions, context: DistributedContext) -> int:
    """The data-order seed, identical on every rank (rank 0 draws one when --seed is not given)."""
    if options.seed is not None:
        return int(options.seed)
    return int(broadcast_object(int(np.random.SeedSequence().entropy % 2**31), context))


def train(options: TrainingOptions, syn_dir: str | Path) -> Tacotron:
    """Train (or resume, or fine-tune with ``options.init_from``) a Tacotron on ``syn_dir``; the bare
    model, identical on every rank."""
    with training_session(MODEL_TYPE, options) as session:
        model = _prepare_and_train(session, options, Path(syn_dir), session.context)
        broadcast_buffers(model, session.context)  # every rank returns rank 0's BatchNorm statistics
    return model


def _prepare_and_train(session: TrainingSession, options: TrainingOptions, syn_dir: Path,
                       context: DistributedContext) -> Tacotron:
    """Restore or build the model, then run the schedule; returns the bare model (its DDP wrapper ends here)."""
    checkpoint = session.checkpoint_to_resume()
    source = session.checkpoint_path if checkpoint is not None and checkpoint.get("resume") else options.init_from
    check_symbols(checkpoint, source)
    hparams = session.resolve_hparams(SynthesizerHParams, checkpoint)
    schedule = parse_schedule(hparams.tts_schedule, hparams.max_r)
    dataset = SynthesizerDataset(syn_dir, hparams)
    data_seed = _shared_seed(options, context)
    seed_everything(options.seed, context)

    model = build_tacotron(hparams).to(context.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=schedule[0].learning_rate)
    start_step = session.attach(model, optimizer, hparams, checkpoint, model_step=_read_model_step,
                                set_model_step=_write_model_step, extra_state=lambda: {"symbols": "".join(SYMBOLS)})
    if context.is_main:
        print(f"Training the synthesizer on {len(dataset)} utterances from '{syn_dir}' "
              f"({model.num_params() / 1e6:.3f}M parameters, {context.world_size} process(es) on {context.device}).",
              flush=True)
        metas = session.run_dir / "metas" / "CharacterEmbeddings.tsv"
        if not metas.exists():
            write_character_embeddings_tsv(metas)
    model.train()
    # Every parameter takes part in the teacher-forced pass, so DDP needs no unused-parameter search.
    trained = wrap_model(model, context)
    _run_schedule(session, trained, model, hparams, schedule, dataset, context, options, data_seed, start_step)
    return model


def _run_schedule(
    session: TrainingSession,
    trained: nn.Module,
    model: Tacotron,
    hparams: SynthesizerHParams,
    schedule: list[ScheduleSession],
    dataset: SynthesizerDataset,
    context: DistributedContext,
    options: TrainingOptions,
    data_seed: int,
    start_step: int,
) -> None:
    """Train session after session of the schedule until it ends, ``--max_steps`` or a stop signal."""
    skipped_in_a_row = 0
    while not session.finished:
        current = session_for_step(schedule, session.step)
        if current is None:
            session.request_stop(f"finished the last tts_schedule session at step {schedule[-1].until_step}")
            if context.is_main and session.step == start_step:
                print(f"The run is already at step {session.step}, past the end of tts_schedule "
                      f"({schedule[-1].until_step}): nothing left to train.", flush=True)
            break
        model.r = current.r
        session.set_learning_rate(current.learning_rate)
        if context.is_main:
            print(f"Schedule session {current.index + 1}/{len(schedule)}: r={current.r}, lr={current.learning_rate:g}, "
                  f"batch {current.batch_size}, until step {current.until_step}.", flush=True)
        loader, sampler = build_loader(dataset, current.r, current.batch_size, context, seed=data_seed,
                                       num_workers=options.num_workers, bucket_by_length=hparams.tts_bucket_by_length)

        def loader_for_epoch(epoch: int, loader=loader, sampler=sampler):
            sampler.set_epoch(epoch)  # a new shuffle each epoch, the same one on every rank
            return loader

        # closing(): the loader's iterator (and any worker processes) ends with the schedule session,
        # even on an exception, instead of whenever the traceback holding this frame is dropped.
        with contextlib.closing(epochs_of_batches(loader_for_epoch, session.epoch)) as batches:
            for epoch, batch in batches:
                session.epoch = epoch
                batch = batch.to(context.device, non_blocking=True)
                # The post-net's BatchNorm statistics move in the forward pass: a skipped update must
                # restore them too, or one NaN batch leaves NaN statistics (NaN mels at inference).
                statistics = [(buffer, buffer.clone()) for buffer in model.buffers() if buffer.is_floating_point()]
                with session.autocast():
                    output = trained(batch.texts, batch.mels, batch.embeddings, exact_rtvc=not hparams.tts_mask_padding,
                                     feed_predictions=hparams.tts_feed_predictions)
                losses = tacotron_loss(output, batch, current.r)
                step_lengths = torch.div(batch.mel_lengths + current.r - 1, current.r, rounding_mode="floor")
                total = losses.total
                guided = None
                if hparams.tts_guided_attention_weight > 0:
                    guided = guided_attention_loss(output.attention, batch.text_lengths, step_lengths,
                                                   hparams.tts_guided_attention_sigma)
                    total = total + hparams.tts_guided_attention_weight * guided
                session.backward(total)
                session.unscale_gradients()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), hparams.tts_clip_grad_norm)
                finite = bool(torch.isfinite(grad_norm))
                if finite or session.use_amp:
                    # With mixed precision the scaler itself skips overflowing steps and lowers its scale.
                    session.optimizer_step()
                    skipped_in_a_row = 0
                else:
                    session.optimizer.zero_grad(set_to_none=True)
                    with torch.no_grad():
                        for buffer, saved in statistics:
                            buffer.copy_(saved)
                    skipped_in_a_row += 1
                    if context.is_main:
                        warnings.warn(f"The gradient norm is {float(grad_norm)} at step {session.step + 1}; "
                                      "this update was skipped.", stacklevel=1)
                    if skipped_in_a_row >= MAX_CONSECUTIVE_SKIPPED_UPDATES:
                        raise TrainingError(f"The gradients were NaN or infinite for {skipped_in_a_row} steps in a row "
                                            f"(step {session.step + 1}); the run diverged: lower the learning rate "
                                            "or check the data.")

                values: dict[str, float] = {}
                if finite:  # a skipped step has nothing meaningful to log (and was reported above)
                    values = losses.as_floats()
                    if guided is not None:
                        values["guided_attention"] = float(guided.detach())
                    values["attention_diagonality"] = float(
                        attention_diagonality(output.attention, batch.text_lengths, step_lengths).mean())
                    values["grad_norm"] = float(grad_norm)
                session.end_step(values)
                if context.is_main and session.due(options.sample_every):
                    try:
                        write_samples(session, hparams, batch, output, current.r)
                    except OSError as error:  # a full disk must not end the run; the checkpoint reports it
                        warnings.warn(f"Could not write the samples of step {session.step}: {error}", stacklevel=1)
                if session.finished or session.step >= current.until_step:
                    break


# ----------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = training_parser(
        "python -m synthesizer.train",
        "Train the synthesizer (Tacotron) on the output of synthesizer preprocessing. Run it again with the "
        "same run_id to resume; under torchrun it trains with DistributedDataParallel.",
        init_from="synthesizer weights (RTVC's synthesizer.pt or ours)")
    parser.add_argument("syn_dir", type=Path,
                        help="Synthesizer data folder with train.txt, mels/ and embeds/ "
                             "(e.g. <datasets_root>/SV2TTS/synthesizer).")
    return parser


def train_from_args(argv: list[str] | None = None) -> Tacotron:
    """Parse the command line and train; returns the bare trained model."""
    args = build_parser().parse_args(argv)
    return train(options_from_args(args), args.syn_dir)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit status 0, or 1 with one ``error:`` line."""
    return run_cli(train_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
