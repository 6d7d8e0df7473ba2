"""Train the iSTFT vocoder: ``python -m vocoder.istft.train <run_id> <syn_dir> [-m models_dir] [options]``.

Random segments of ``segment_frames`` frames of the synthesizer's training audio
(``<syn_dir>/train.txt`` and ``audio/``), their mels computed on the fly with the synthesizer's
front-end, the APNet-style losses of :mod:`vocoder.istft.losses`, AdamW with a linear warm-up and a
cosine decay. The run folder ``<models_dir>/<run_id>/`` gets ``vocoder.pt`` (our checkpoint layout
with ``architecture="istft"``), backups, ``hparams.json``, TensorBoard logs and, every
``--sample_every`` steps, a few vocoded training utterances next to their originals in ``samples/``.
``--gta_dir`` fine-tunes on a synthesizer's ground-truth-aligned mels instead (see
:mod:`vocoder.istft.data`), usually with ``--init_from`` a vocoder trained on real mels, and
``--hparams gta_batch_fraction=0.5`` keeps half of the batches on the recorded mels.
``--hparams w_speaker=200`` adds the speaker-consistency loss of :mod:`vocoder.istft.speaker_loss`
through the GE2E encoder of ``-e`` (by default the one the CLI uses); ``w_adversarial`` the
discriminator of :mod:`vocoder.istft.discriminator`.
Resume, ``--max_steps``, SIGINT/SIGTERM save-and-stop, ``--cpu_bf16`` and ``torchrun`` come from
:mod:`utils.training`.

Examples
--------
>>> args = build_parser().parse_args(["run", "data", "--max_steps", "10", "--cpu_bf16"])
>>> args.syn_dir, args.max_steps, args.cpu_bf16
(PosixPath('data'), 10, True)
>>> round(learning_rate_at(0, ISTFTHParams()), 8), learning_rate_at(300, ISTFTHParams())
(2.67e-06, 0.0008)
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from synthesizer.metadata import MetadataError, read_train_txt
from utils.distributed import wrap_model
from utils.arguments import training_parser
from utils.training import (TrainingError, TrainingOptions, TrainingSession, check_batch_fits_data,
                            check_window_fits_data, epochs_of_batches, options_from_args, run_cli, seed_everything,
                            training_session, worker_init_fn)
from vocoder.istft.data import SegmentDataset
from utils.audio_io import save_audio
from vocoder.istft.hparams import ISTFTHParams
from vocoder.istft.inference import ISTFTVocoder
from vocoder.istft.discriminator import SpectrogramDiscriminator, discriminator_loss
from vocoder.istft.losses import losses_and_signals
from vocoder.istft.speaker_loss import SpeakerConsistencyLoss
from vocoder.istft.model import ISTFTVocoderNet, build_istft_vocoder

#: The checkpoint's ``architecture`` entry: how loaders tell this vocoder from a WaveRNN file.
ARCHITECTURE = "istft"


def build_parser() -> argparse.ArgumentParser:
    parser = training_parser(
        "python -m vocoder.istft.train",
        "Train the frame-rate iSTFT vocoder on the audio of a synthesizer data folder (train.txt + audio/). "
        "Resumes <models_dir>/<run_id>/vocoder.pt when it exists.",
        init_from="iSTFT vocoder weights", save_every=200, backup_every=1000, sample_every=1000, num_workers=1)
    parser.add_argument("syn_dir", type=Path, help="Synthesizer data folder holding train.txt and audio/.")
    group = parser.add_argument_group("iSTFT vocoder")
    group.add_argument("--gta_dir", type=Path, default=None,
                       help="Fine-tune on a synthesizer's ground-truth-aligned mels: the folder with "
                            "synthesized.txt and mels_gta/ written by python -m vocoder.preprocess "
                            "(--hparams gta_batch_fraction=F mixes in copy-synthesis batches).")
    group.add_argument("-e", "--encoder_model_fpath", type=Path, default=None,
                       help="Speaker encoder of the speaker-consistency loss (used only with "
                            "--hparams w_speaker=...; default: saved_models/default/encoder.pt).")
    group.add_argument("--sample_seconds", type=float, default=3.0,
                       help="Length of each vocoded sample utterance, in seconds (default: %(default)s).")
    return parser


def learning_rate_at(step: int, hparams: ISTFTHParams) -> float:
    """Linear warm-up over ``warmup_steps``, then a cosine from ``learning_rate`` to ``lr_min_ratio`` of it."""
    peak = hparams.learning_rate
    if step < hparams.warmup_steps:
        return peak * (step + 1) / hparams.warmup_steps
    progress = min(1.0, (step - hparams.warmup_steps) / max(1, hparams.decay_steps - hparams.warmup_steps))
    floor = peak * hparams.lr_min_ratio
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def uses_gta_mels(step: int, hparams: ISTFTHParams, seed: int | None) -> bool:
    """Whether the batch of ``step`` is fed GTA mels (a share ``gta_batch_fraction`` of them).

    Decided by the step and seed alone, so a resumed run and every DDP rank make the same choice.

    >>> hp = ISTFTHParams(gta_batch_fraction=0.25)
    >>> share = sum(uses_gta_mels(step, hp, 1) for step in range(4000)) / 4000
    >>> 0.22 < share < 0.28, uses_gta_mels(7, ISTFTHParams(), None)
    (True, True)
    """
    if hparams.gta_batch_fraction >= 1.0:
        return True
    return bool(np.random.default_rng([step, seed or 0]).random() < hparams.gta_batch_fraction)


def write_samples(session: TrainingSession, model: ISTFTVocoderNet, dataset: SegmentDataset,
                  seconds: float, count: int = 2) -> list[Path]:
    """Vocode ``count`` fixed training utterances from their ground-truth mels into ``samples/``."""
    signal = model.hparams.signal
    vocoder = ISTFTVocoder(model)
    session.samples_dir.mkdir(parents=True, exist_ok=True)
    written = []
    indices = sorted({int(i) for i in np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round()})
    for number, index in enumerate(indices, start=1):
        wav = dataset.load(index)[: int(seconds * signal.sample_rate)]
        with torch.no_grad():
            mel = model.front.mel_from_wave(torch.from_numpy(wav)[None])[0].numpy()  # (M, T)
        generated = vocoder.vocode(mel)
        for kind, audio in (("target", wav[: len(generated)]), ("generated", generated)):
            path = session.samples_dir / f"step{session.step}_{number}_{kind}.wav"
            save_audio(path, audio, signal.sample_rate)
            session.logger.audio(f"samples/{number}_{kind}", audio, signal.sample_rate, session.step)
            written.append(path)
    session.logger.flush()
    return written


def _longest_frames(syn_dir: str | Path, hop_size: int) -> int:
    """Mel frames of the longest utterance listed in ``<syn_dir>/train.txt`` (0 when unreadable: the
    dataset then reports the problem itself)."""
    try:
        entries = read_train_txt(Path(syn_dir) / "train.txt")
    except MetadataError:
        return 0
    return max((int(entry.n_samples) // hop_size for entry in entries), default=0)


def train(options: TrainingOptions, syn_dir: str | Path, *, sample_seconds: float = 3.0,
          gta_dir: str | Path | None = None, encoder_path: str | Path | None = None) -> ISTFTVocoderNet:
    """Train (or resume) the run ``options.run_id``; returns the bare trained model.

    Raises
    ------
    TrainingError
        Missing or unusable data, bad hyperparameters, a checkpoint of another model or architecture.
    """
    with training_session("vocoder", options) as session:
        context = session.context
        seed_everything(options.seed, context)
        checkpoint = session.checkpoint_to_resume()
        if checkpoint is not None and checkpoint.get("architecture") != ARCHITECTURE:
            raise TrainingError("The vocoder checkpoint to resume or fine-tune from is not an iSTFT vocoder "
                                "(use another run_id or --force_restart).")
        hparams = session.resolve_hparams(ISTFTHParams, checkpoint)
        longest = _longest_frames(syn_dir, hparams.signal.hop_size)
        if longest:  # else the dataset says what is wrong with train.txt
            check_window_fits_data("segment_frames", hparams.segment_frames, longest, unit="frames")
        dataset = SegmentDataset.from_folder(syn_dir, hparams, gta_dir=gta_dir)
        # Batches are full or dropped: a batch larger than the data would never produce a step.
        check_batch_fits_data("batch_size", hparams.batch_size, len(dataset), context,
                              what=f"utterances of at least {hparams.segment_frames} frames")
        model = build_istft_vocoder(hparams).to(context.device)
        model.bf16 = session.use_cpu_bf16  # the backbone autocasts itself; losses stay float32
        decay, no_decay = [], []
        for name, parameter in model.named_parameters():
            (no_decay if parameter.ndim < 2 or name.endswith("scale") else decay).append(parameter)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=hparams.learning_rate, betas=tuple(hparams.adam_betas),
        )
        adversary = _Adversary.build(hparams, context.device, checkpoint)
        speaker = _speaker_loss(hparams, encoder_path, context.device)
        session.attach(model, optimizer, hparams, checkpoint,
                       set_model_step=lambda m, step: m.step.fill_(step),
                       extra_state=lambda: {"architecture": ARCHITECTURE, **adversary.state()})
        net = wrap_model(model, context)
        if adversary.enabled:
            adversary.net = wrap_model(adversary.discriminator, context)  # DDP needs its weights trainable here
            adversary.discriminator.requires_grad_(False)  # trainable only inside its own step
        model.train()
        _train_loop(session, net, model, dataset, options, sample_seconds, adversary, speaker)
    return model


def _speaker_loss(hparams: ISTFTHParams, encoder_path: str | Path | None,
                  device: torch.device) -> SpeakerConsistencyLoss | None:
    """The frozen speaker-consistency loss when ``w_speaker`` > 0, else ``None``."""
    if not hparams.speaker_consistency:
        return None
    from synthesizer.preprocess import resolve_encoder_path

    try:
        path = resolve_encoder_path(None if encoder_path is None else Path(encoder_path))
        return SpeakerConsistencyLoss.from_checkpoint(path, hparams.signal.preemphasis, hparams.signal.sample_rate,
                                                      device)
    except (FileNotFoundError, ValueError) as error:
        raise TrainingError(str(error)) from None


class _Adversary:
    """The optional discriminator, its optimizer and its step (nothing at all when ``w_adversarial`` is 0).

    Its state rides in the training checkpoint under ``discriminator_state`` and
    ``discriminator_optimizer_state``; a run that turns the adversary on later, or fine-tunes from a
    plain vocoder, starts it fresh.
    """

    def __init__(self, discriminator: SpectrogramDiscriminator | None, optimizer: torch.optim.Optimizer | None,
                 clip_grad_norm: float) -> None:
        self.discriminator, self.optimizer, self.clip_grad_norm = discriminator, optimizer, clip_grad_norm
        self.net: nn.Module | None = discriminator  # what its own step runs (DDP-wrapped when distributed)

    @property
    def enabled(self) -> bool:
        return self.discriminator is not None

    @classmethod
    def build(cls, hparams: ISTFTHParams, device: torch.device, checkpoint: dict | None) -> _Adversary:
        if not hparams.adversarial:
            return cls(None, None, hparams.clip_grad_norm)
        discriminator = SpectrogramDiscriminator(hparams.discriminator_channels, hparams.mr_resolutions).to(device)
        optimizer = torch.optim.AdamW(discriminator.parameters(), lr=hparams.learning_rate,
                                      betas=tuple(hparams.adam_betas), weight_decay=0.0)
        if checkpoint is not None and checkpoint.get("resume") and "discriminator_state" in checkpoint:
            try:
                discriminator.load_state_dict(checkpoint["discriminator_state"])
                optimizer.load_state_dict(checkpoint["discriminator_optimizer_state"])
            except (RuntimeError, ValueError, KeyError) as error:
                raise TrainingError(f"The discriminator saved in the checkpoint does not fit "
                                    f"discriminator_channels / mr_resolutions ({str(error).splitlines()[0]}); "
                                    "use --force_restart to start over.") from None
        discriminator.train()
        return cls(discriminator, optimizer, hparams.clip_grad_norm)

    def state(self) -> dict:
        if not self.enabled:
            return {}
        return {"discriminator_state": self.discriminator.state_dict(),
                "discriminator_optimizer_state": self.optimizer.state_dict()}

    def step(self, target: torch.Tensor, output: torch.Tensor, learning_rate: float) -> float:
        """One discriminator update on real ``target`` and the generator's detached ``output``."""
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        self.discriminator.requires_grad_(True)
        loss = discriminator_loss(self.net, target, output.detach())
        loss.backward()
        nn.utils.clip_grad_norm_(self.discriminator.parameters(), self.clip_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        # Frozen for the generator's next pass: its backward then reaches the audio without
        # computing gradients for the discriminator's weights, which nothing would use.
        self.discriminator.requires_grad_(False)
        return float(loss.detach())


def _train_loop(session: TrainingSession, net: nn.Module, model: ISTFTVocoderNet, dataset: SegmentDataset,
                options: TrainingOptions, sample_seconds: float, adversary: _Adversary,
                speaker: SpeakerConsistencyLoss | None = None) -> None:
    hparams, context = model.hparams, session.context
    last_sample_step = session.step

    def make_loader(epoch: int) -> DataLoader:
        sampler = None
        if context.is_distributed:
            sampler = DistributedSampler(dataset, num_replicas=context.world_size, rank=context.rank,
                                         shuffle=True, seed=options.seed or 0, drop_last=True)
            sampler.set_epoch(epoch)
        return DataLoader(dataset, batch_size=hparams.batch_size, shuffle=sampler is None, sampler=sampler,
                          drop_last=True, num_workers=options.num_workers, worker_init_fn=worker_init_fn,
                          persistent_workers=False)

    def sample() -> None:
        nonlocal last_sample_step
        last_sample_step = session.step
        if not context.is_main:
            return
        model.eval()
        try:
            write_samples(session, model, dataset, sample_seconds)
        except Exception as error:  # noqa: BLE001 - a sample must never end a training run
            warnings.warn(f"Could not write the samples of step {session.step}: {error}", stacklevel=2)
        finally:
            model.train()

    if session.finished:
        return
    for epoch, segments in epochs_of_batches(make_loader, start_epoch=session.epoch):
        session.epoch = epoch
        session.set_learning_rate(learning_rate_at(session.step, hparams))
        segments, mels = segments if isinstance(segments, (list, tuple)) else (segments, None)
        segments = segments.to(context.device, non_blocking=True)  # (B, 1 + L)
        if mels is not None and not uses_gta_mels(session.step, hparams, options.seed):
            mels = None  # a copy-synthesis batch: the segments' own mels
        mels = None if mels is None else mels.to(context.device, non_blocking=True)  # (B, M, 1 + L / hop)
        # The generator's adversarial terms use the bare, frozen discriminator: no gradient of its
        # weights, so nothing for DDP to synchronise there.
        loss, parts, (target, output) = losses_and_signals(net, segments, hparams, mels,
                                                           discriminator=adversary.discriminator, speaker=speaker)
        session.backward(loss)
        session.unscale_gradients()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), hparams.clip_grad_norm)
        session.optimizer_step()
        if adversary.enabled:
            parts["discriminator"] = adversary.step(target, output, session.learning_rate)
        session.end_step({"loss": float(loss.detach()), **parts, "grad_norm": float(grad_norm)})
        if session.due(options.sample_every):
            sample()
        if session.finished:
            break
    if options.sample_every and session.step != last_sample_step:
        sample()


def train_from_args(argv: list[str] | None = None) -> ISTFTVocoderNet:
    """Parse the command line and train; returns the bare trained model."""
    args = build_parser().parse_args(argv)
    return train(options_from_args(args), args.syn_dir, sample_seconds=args.sample_seconds, gta_dir=args.gta_dir,
                 encoder_path=args.encoder_model_fpath)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit status 0, or 1 with one ``error:`` line."""
    return run_cli(train_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
