"""Train the WaveRNN vocoder: ``python -m vocoder.train <run_id> <datasets_root> [-g] [options]``.

RTVC's recipe (reference §4.6) by default: random 1000-sample windows of GTA mels (or ground-truth
mels with ``-g``) and their mu-law labels, Adam at ``voc_lr`` (1e-4), batches of ``voc_batch_size``
(100), cross-entropy over the 512 classes (RAW) or the logistic-mixture loss (MOL), no learning-rate
schedule; the step count runs on across epochs. The run folder ``<models_dir>/<run_id>/`` gets
``vocoder.pt`` (RTVC's keys, readable by RTVC and by :class:`vocoder.inference.WaveRNNVocoder`),
backups, ``hparams.json``, TensorBoard logs and, every ``--sample_every`` steps, a few generated test
utterances next to their targets in ``samples/``. Runs alone or under ``torchrun`` (DDP) unchanged.

Examples
--------
>>> args = build_parser().parse_args(["run", "data", "-g", "--max_steps", "10"])
>>> args.ground_truth, args.max_steps, args.syn_dir
(True, 10, None)
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.distributed import broadcast_buffers, wrap_model
from utils.arguments import training_parser
from utils.training import (TrainingError, TrainingOptions, TrainingSession, check_window_fits_data, epochs_of_batches,
                            options_from_args, run_cli, seed_everything, training_session)
from vocoder.data import VocoderData, VocoderDataset, make_data_loader
from vocoder.distribution import discretized_mix_logistic_loss
from vocoder.hparams import VocoderHParams
from vocoder.inference import WaveRNNVocoder
from vocoder.model import WaveRNN, build_wavernn


def build_parser() -> argparse.ArgumentParser:
    parser = training_parser(
        "python -m vocoder.train",
        "Train the WaveRNN vocoder on GTA mels (python -m vocoder.preprocess) or, with -g, on ground-truth "
        "mels. Resumes <models_dir>/<run_id>/vocoder.pt when it exists.",
        init_from="vocoder weights (RTVC's vocoder.pt or ours)", sample_every=5000)
    parser.add_argument("datasets_root", type=Path,
                        help="Folder holding SV2TTS/ (the defaults of --syn_dir and --voc_dir live under it).")
    group = parser.add_argument_group("vocoder")
    group.add_argument("--syn_dir", type=Path, default=None,
                       help="Synthesizer data folder (train.txt, mels/, audio/); "
                            "default <datasets_root>/SV2TTS/synthesizer.")
    group.add_argument("--voc_dir", type=Path, default=None,
                       help="GTA folder (synthesized.txt, mels_gta/); default <datasets_root>/SV2TTS/vocoder.")
    group.add_argument("-g", "--ground_truth", action="store_true",
                       help="Train on the ground-truth mels of --syn_dir instead of GTA mels.")
    group.add_argument("--clip_grad_norm", type=float, default=None,
                       help="Clip the gradient norm to this value (RTVC does not clip; default off).")
    group.add_argument("--sample_seconds", type=float, default=1.0,
                       help="Length of each generated test utterance, in seconds (default: %(default)s).")
    return parser


def rtvc_loss(output: torch.Tensor, target: torch.Tensor, hparams: VocoderHParams) -> torch.Tensor:
    """RTVC's training loss, computed in float32.

    Parameters
    ----------
    output
        Network output ``(B, L, n_classes)``: logits (RAW) or mixture parameters (MOL).
    target
        ``(B, L)`` class indices (RAW) or floats in [-1, 1] (MOL).

    Examples
    --------
    >>> hp = VocoderHParams()
    >>> loss = rtvc_loss(torch.zeros(2, 10, 512), torch.zeros(2, 10, dtype=torch.long), hp)
    >>> round(loss.item(), 4) == round(float(np.log(512)), 4)
    True
    """
    output = output.float()
    if hparams.voc_mode == "MOL":
        return discretized_mix_logistic_loss(output, target.float(), num_classes=2**16)
    return F.cross_entropy(output.transpose(1, 2), target)  # (B, C, L) against (B, L)


def check_hparams(hparams: VocoderHParams) -> None:
    """Training constraints between fields (each field's own range is checked by :class:`VocoderHParams`)."""
    hop = hparams.hop_length
    if hparams.voc_seq_len % hop:
        raise TrainingError(f"voc_seq_len ({hparams.voc_seq_len}) must be a positive multiple of hop_length ({hop}).")
    if hparams.voc_batch_size * hparams.voc_seq_len // hop < 2:
        raise TrainingError("A batch needs at least 2 mel frames for BatchNorm: raise voc_batch_size or voc_seq_len.")


# ----------------------------------------------------------------------------------------------
# Samples


def sample_indices(dataset_size: int, count: int) -> list[int]:
    """``count`` fixed utterances spread over the dataset (the same ones at every sampling step).

    Examples
    --------
    >>> sample_indices(10, 3), sample_indices(2, 5), sample_indices(5, 0)
    ([0, 4, 9], [0, 1], [])
    """
    if count <= 0 or dataset_size <= 0:
        return []
    return sorted({int(i) for i in np.linspace(0, dataset_size - 1, min(count, dataset_size)).round()})


def write_samples(session: TrainingSession, model: WaveRNN, dataset: VocoderDataset, seconds: float) -> list[Path]:
    """Generate the test utterances of this step (rank 0): ``samples/step<k>_<i>_{target,generated}.wav``.

    Each utterance's mel is cut to about ``seconds`` so sampling stays cheap; RAW models go through the
    fast batched generator, MOL models through RTVC's exact loop.
    """
    from utils.audio_io import save_audio

    hparams = model.hparams
    indices = sample_indices(len(dataset), hparams.voc_gen_at_checkpoint)
    if not indices or seconds <= 0:
        return []
    frames = max(2, int(round(seconds * hparams.sample_rate / hparams.hop_length)) + 1)
    mels, targets = [], []
    for index in indices:
        mel = dataset.load_mel(index)[:, :frames]  # (num_mels, T) in [-1, 1]
        mels.append(mel)
        targets.append(dataset.load_audio(index)[: (mel.shape[1] - 1) * hparams.hop_length])
    generated = WaveRNNVocoder(model).vocode_batch(mels, normalize=False, fast=True)
    session.samples_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for number, (target, wav) in enumerate(zip(targets, generated), start=1):
        for kind, audio in (("target", target), ("generated", wav)):
            path = session.samples_dir / f"step{session.step}_{number}_{kind}.wav"
            save_audio(path, audio, hparams.sample_rate)
            session.logger.audio(f"samples/{number}_{kind}", audio, hparams.sample_rate, session.step)
            written.append(path)
    session.logger.flush()
    return written


# ----------------------------------------------------------------------------------------------
# Training


def train(
    options: TrainingOptions,
    syn_dir: str | Path,
    voc_dir: str | Path,
    *,
    ground_truth: bool = False,
    clip_grad_norm: float | None = None,
    sample_seconds: float = 1.0,
) -> WaveRNN:
    """Train (or resume) the run ``options.run_id``; returns the bare trained model.

    Parameters
    ----------
    options
        Run settings (``options.init_from`` may name a vocoder checkpoint to fine-tune from).
    syn_dir
        Synthesizer data folder: ``audio/`` always, ``train.txt`` and ``mels/`` with ``ground_truth``.
    voc_dir
        GTA folder: ``synthesized.txt`` and ``mels_gta/``.
    ground_truth
        Train on ground-truth mels instead of GTA mels.
    clip_grad_norm
        Gradient-norm clipping threshold; ``None`` (RTVC) does not clip.
    sample_seconds
        Length of each generated test utterance.

    Raises
    ------
    TrainingError
        Missing or unusable data, bad hyperparameters, a checkpoint of another model.
    """
    if clip_grad_norm is not None and clip_grad_norm <= 0:
        raise TrainingError("--clip_grad_norm must be positive.")
    data = VocoderData.locate(syn_dir, voc_dir, ground_truth)  # before any run folder is made
    with training_session("vocoder", options) as session:
        context = session.context
        seed_everything(options.seed, context)
        checkpoint = session.checkpoint_to_resume()
        hparams = session.resolve_hparams(VocoderHParams, checkpoint)
        check_hparams(hparams)
        dataset = VocoderDataset.from_data(data, hparams)
        # Shorter utterances are padded to one window: the window must not outgrow the data.
        check_window_fits_data("voc_seq_len", hparams.voc_seq_len,
                               max(int(entry.n_samples) for entry in dataset.entries),
                               sample_rate=hparams.sample_rate)

        model = build_wavernn(hparams).to(context.device)
        # All parameters, ``step`` included, as RTVC: its optimizer state then loads into ours.
        optimizer = torch.optim.Adam(model.parameters(), lr=hparams.voc_lr)
        session.attach(
            model, optimizer, hparams, checkpoint,
            model_step=lambda m: int(m.step.item()),
            set_model_step=lambda m, step: m.step.data.fill_(step),
        )
        session.set_learning_rate(hparams.voc_lr)  # no schedule: a resumed optimizer takes this run's rate
        net = wrap_model(model, context)
        model.train()
        _train_loop(session, net, model, dataset, options, clip_grad_norm, sample_seconds)
        del net  # DDP holds the process group: let it go before the group is destroyed
        broadcast_buffers(model, context)  # every rank returns rank 0's BatchNorm statistics
    return model


def _train_loop(
    session: TrainingSession,
    net: nn.Module,
    model: WaveRNN,
    dataset: VocoderDataset,
    options: TrainingOptions,
    clip_grad_norm: float | None,
    sample_seconds: float,
) -> None:
    hparams, context = model.hparams, session.context
    last_sample_step = session.step

    def make_loader(epoch: int):
        return make_data_loader(dataset, hparams, context, epoch, num_workers=options.num_workers,
                                seed=options.seed or 0)

    def sample() -> None:
        nonlocal last_sample_step
        last_sample_step = session.step
        if not context.is_main:
            return
        try:
            write_samples(session, model, dataset, sample_seconds)
        except (OSError, ValueError) as error:  # a sample must never end a training run
            warnings.warn(f"Could not write the samples of step {session.step}: {error}", stacklevel=2)

    if not session.finished:
        # closing(): the loader's iterator (and any worker processes) ends here, even on an exception,
        # instead of whenever the traceback that holds this frame is dropped (possibly at exit).
        with contextlib.closing(epochs_of_batches(make_loader, start_epoch=session.epoch)) as batches:
            for epoch, (x, y, mels) in batches:
                session.epoch = epoch
                x, y, mels = (t.to(context.device, non_blocking=True) for t in (x, y, mels))
                with session.autocast():
                    output = net(x, mels)  # (B, L, n_classes)
                loss = rtvc_loss(output, y, hparams)
                session.backward(loss)
                if clip_grad_norm is not None:
                    session.unscale_gradients()
                    nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], clip_grad_norm)
                session.optimizer_step()
                session.end_step({"loss": loss.item()})
                if session.due(options.sample_every):
                    sample()
                if session.finished:
                    break
    if options.sample_every and session.step != last_sample_step:
        sample()  # the end of the run gets samples too


def train_from_args(argv: list[str] | None = None) -> WaveRNN:
    """Parse the command line and train; returns the bare trained model."""
    args = build_parser().parse_args(argv)
    options = options_from_args(args)
    root = args.datasets_root
    return train(
        options,
        args.syn_dir or root / "SV2TTS" / "synthesizer",
        args.voc_dir or root / "SV2TTS" / "vocoder",
        ground_truth=args.ground_truth,
        clip_grad_norm=args.clip_grad_norm,
        sample_seconds=args.sample_seconds,
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit status 0, or 1 with one ``error:`` line."""
    return run_cli(train_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
