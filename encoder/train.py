"""Train the GE2E speaker encoder: ``python -m encoder.train <run_id> <clean_data_root>``.

RTVC's recipe (reference §2.1, §4.3) with its defaults from :class:`~encoder.hparams.EncoderHParams`:
batches of 64 speakers × 10 utterances of 1.6 s, softmax GE2E loss, Adam at a constant 1e-4, the
gradients of the similarity scale and bias multiplied by 0.01, then all gradients clipped to an L2
norm of 3. Logged to TensorBoard (``<run>/tensorboard``): loss, EER, learning rate, steps/s, the
similarity scale and bias, and every ``--umap_every`` steps a UMAP projection of a fixed set of
speakers (also saved as ``<run>/samples/umap_<step>.png``).

Differences from RTVC:

* the loss is computed on the training device (RTVC forced the CPU because moving its similarity
  parameters there unregistered them, quirk 18); under ``torchrun`` it runs inside the module that
  DistributedDataParallel wraps, so the similarity parameters' gradients are averaged like the rest;
* the step count is the number of completed steps (RTVC's counter started at 1), so ``--max_steps 3``
  stops after three updates and the checkpoint says ``"step": 3``;
* the UMAP plot uses the same speakers and crops every time (RTVC used the current batch).

Examples
--------
>>> args = build_parser().parse_args(["my_run", "SV2TTS/encoder", "--umap_every", "0"])
>>> args.run_id, str(args.clean_data_root), args.umap_every, args.save_every
('my_run', 'SV2TTS/encoder', 0, 500)
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from encoder.data import SpeakerBatchStream, SpeakerCorpus, make_batch_loader, projection_set
from encoder.hparams import EncoderHParams
from encoder.metrics import ge2e_softmax_loss, similarity_eer
from encoder.model import SpeakerEncoder, build_speaker_encoder
from utils.distributed import unwrap_model, wrap_model
from utils.arguments import training_parser
from utils.training import (TrainingError, TrainingOptions, TrainingSession, options_from_args, run_cli,
                            seed_everything, training_session)

#: RTVC's gradient rules (``encoder/model.py: do_gradient_ops``).
SIMILARITY_GRADIENT_SCALE = 0.01
MAX_GRADIENT_NORM = 3.0
#: The UMAP plot shows at most this many speakers (RTVC: 10).
UMAP_SPEAKERS = 10


class GE2ELossModule(nn.Module):
    """The encoder plus its GE2E loss in one ``forward``, the module DDP wraps.

    DistributedDataParallel only averages gradients of parameters used inside the wrapped module's
    ``forward``; the similarity scale and bias are used by the loss, so the loss lives here.
    """

    def __init__(self, encoder: SpeakerEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, frames: Tensor, n_speakers: int, n_utterances: int) -> tuple[Tensor, Tensor]:
        """GE2E loss of a speaker-major batch.

        Parameters
        ----------
        frames
            ``(N·M, n_frames, n_mels)`` mel windows, ``M`` consecutive rows per speaker.
        n_speakers, n_utterances
            ``N`` and ``M``.

        Returns
        -------
        loss, similarity
            The scalar loss and the detached ``(N, M, N)`` similarity matrix (for the EER).
        """
        embeds = self.encoder(frames)  # (N·M, E)
        embeds = embeds.float().reshape(n_speakers, n_utterances, -1)  # (N, M, E)
        # Cosines and the softmax in float32 even under mixed precision: they are cheap and fp16
        # loses the small differences between centroid similarities.
        with torch.autocast(device_type=frames.device.type, enabled=False):
            similarity = self.encoder.similarity_matrix(embeds)  # (N, M, N)
            loss = ge2e_softmax_loss(similarity)
        return loss, similarity.detach()


def apply_gradient_rules(encoder: SpeakerEncoder, max_norm: float = MAX_GRADIENT_NORM) -> float:
    """RTVC's gradient treatment: similarity scale/bias gradients × 0.01, then clip all to ``max_norm``.

    Call after the gradients are unscaled (mixed precision). Returns the total norm before clipping.

    Examples
    --------
    >>> model = SpeakerEncoder(EncoderHParams(hidden_size=4, embedding_size=4, num_layers=1))
    >>> for parameter in model.parameters():
    ...     parameter.grad = torch.zeros_like(parameter)
    >>> model.similarity_weight.grad.fill_(2.0)[0].item()
    2.0
    >>> round(apply_gradient_rules(model), 4), round(model.similarity_weight.grad.item(), 4)
    (0.02, 0.02)
    """
    for parameter in (encoder.similarity_weight, encoder.similarity_bias):
        if parameter.grad is not None:
            parameter.grad.mul_(SIMILARITY_GRADIENT_SCALE)
    norm = nn.utils.clip_grad_norm_(encoder.parameters(), max_norm, norm_type=2.0)
    return float(norm)


# ----------------------------------------------------------------------------------------------
# UMAP samples


def project_embeddings(embeds: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D UMAP projection of ``(n, E)`` embeddings → ``(n, 2)``.

    ``n_neighbors`` shrinks for small sets (UMAP needs fewer neighbours than points). The first call
    in a process compiles UMAP's kernels (about 15 s).
    """
    import umap  # imported here: slow to import, and only rank 0 ever projects

    n_points = len(embeds)
    reducer = umap.UMAP(n_neighbors=max(2, min(15, n_points - 1)), random_state=seed,
                        init="spectral" if n_points > 10 else "random", n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba and n_jobs/random_state chatter
        return reducer.fit_transform(embeds)


def draw_projection(points: np.ndarray, labels: Sequence[str], title: str):
    """Scatter plot of projected embeddings, one colour per speaker (a ``matplotlib.figure.Figure``)."""
    from matplotlib.figure import Figure  # needs no GUI backend

    figure = Figure(figsize=(6, 6))
    axes = figure.add_subplot()
    names = list(dict.fromkeys(labels))
    colours = _colours(len(names))
    label_array = np.asarray(labels)
    for name, colour in zip(names, colours):
        chosen = label_array == name
        axes.scatter(points[chosen, 0], points[chosen, 1], s=18, color=colour, label=name)
    axes.set_aspect("equal", "datalim")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title)
    axes.legend(fontsize="x-small", loc="best", markerscale=0.8)
    figure.tight_layout()
    return figure


def _colours(count: int) -> list[tuple[float, ...]]:
    """``count`` distinct colours (RTVC's fixed 14-colour palette failed on a 15th speaker, quirk 31)."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(count)]


class UmapSampler:
    """Embeds the fixed projection set and writes ``samples/umap_<step>.png`` plus a TensorBoard figure."""

    def __init__(self, frames: np.ndarray, labels: list[str], session: TrainingSession) -> None:
        self.frames = torch.from_numpy(frames)  # (S·U, n_frames, n_mels)
        self.labels = labels
        self.session = session

    @torch.no_grad()
    def __call__(self, encoder: SpeakerEncoder, step: int) -> Path | None:
        device = next(encoder.parameters()).device
        was_training = encoder.training
        encoder.eval()
        try:
            embeds = encoder(self.frames.to(device)).float().cpu().numpy()  # (S·U, E)
        finally:
            encoder.train(was_training)
        try:
            points = project_embeddings(embeds)
        except Exception as error:  # a plot must never end a training run  # noqa: BLE001
            warnings.warn(f"UMAP projection failed at step {step}: {error}", stacklevel=2)
            return None
        figure = draw_projection(points, self.labels, f"UMAP of {len(set(self.labels))} speakers, step {step}")
        path = self.session.samples_dir / f"umap_{step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
        self.session.logger.figure("umap", figure, step)
        return path


# ----------------------------------------------------------------------------------------------
# Training


def train(options: TrainingOptions, clean_data_root: str | Path, umap_every: int = 100) -> nn.Module:
    """Train (or resume) a speaker encoder and return the bare trained model.

    Works alone or under ``torchrun`` (DistributedDataParallel, gloo on CPU, NCCL on GPUs): every
    rank draws its own batches (``speakers_per_batch`` speakers each), gradients are averaged, only
    rank 0 writes files.

    Parameters
    ----------
    options
        Run settings (``<models_dir>/<run_id>/encoder.pt``, ``--max_steps``, ...).
    clean_data_root
        The preprocessed data folder (``<speaker>/*.npy`` + ``_sources.txt``).
    umap_every
        Write a UMAP plot of a fixed speaker set every this many steps (0: never).
    """
    if umap_every < 0:
        raise TrainingError("--umap_every cannot be negative.")
    with training_session("encoder", options) as session:
        context = session.context
        seed_everything(options.seed, context)
        checkpoint = session.checkpoint_to_resume()
        hparams = session.resolve_hparams(EncoderHParams, checkpoint)
        corpus = SpeakerCorpus.load(clean_data_root, hparams)
        if context.is_main:
            print(f"Training data: {corpus.summary()}.", flush=True)

        encoder = build_speaker_encoder(hparams).to(context.device)
        optimizer = torch.optim.Adam(encoder.parameters(), lr=hparams.learning_rate_init)
        step = session.attach(encoder, optimizer, hparams, checkpoint)
        # RTVC resets the rate after loading the optimizer; it also lets --hparams change it on resume.
        session.set_learning_rate(hparams.learning_rate_init)
        # DDP broadcasts rank 0's weights here, so ranks seeded differently still start identical.
        trainer = wrap_model(GE2ELossModule(encoder), context)
        trainer.train()

        n_speakers, n_utterances = hparams.speakers_per_batch, hparams.utterances_per_speaker
        stream = SpeakerBatchStream(corpus.speakers, n_speakers, n_utterances, hparams.partials_n_frames,
                                    seed=options.seed, rank=context.rank, start_step=step)
        loader = make_batch_loader(stream, options.num_workers, pin_memory=context.device.type == "cuda")
        umap_sampler = None
        if umap_every and context.is_main:
            frames, labels = projection_set(corpus.speakers, UMAP_SPEAKERS, n_utterances, hparams.partials_n_frames)
            umap_sampler = UmapSampler(frames, labels, session)

        batches = iter(loader)
        try:
            while not session.finished:
                frames = next(batches).to(context.device, non_blocking=True)  # (N·M, 160, 40)
                with session.autocast():
                    loss, similarity = trainer(frames, n_speakers, n_utterances)
                session.backward(loss)
                session.unscale_gradients()
                apply_gradient_rules(encoder)
                session.optimizer_step()

                # A diverged step (non-finite similarities) has no EER; the session warns about the loss.
                eer = similarity_eer(similarity) if bool(torch.isfinite(similarity).all()) else float("nan")
                session.end_step({"loss": loss.item(), "eer": eer})
                if context.is_main and session.step % options.log_every == 0:
                    session.logger.scalars({"model/similarity_weight": encoder.similarity_weight.item(),
                                            "model/similarity_bias": encoder.similarity_bias.item()}, session.step)
                if umap_sampler is not None and session.due(umap_every):
                    umap_sampler(encoder, session.step)
        finally:
            del batches  # stops the DataLoader workers
        del trainer  # DDP holds the process group: let it go before the group is destroyed
    return unwrap_model(encoder)


# ----------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m encoder.train`` argument parser."""
    parser = training_parser(
        "python -m encoder.train",
        "Train the GE2E speaker encoder on preprocessed data (python -m encoder.preprocess). "
        "Resumes <models_dir>/<run_id>/encoder.pt if it exists. "
        "Scale out with: torchrun --nproc_per_node=N -m encoder.train ...",
        init_from="encoder weights (RTVC's encoder.pt or ours)", save_every=500, backup_every=7500)
    parser.add_argument("clean_data_root", type=Path,
                        help="Folder of speaker sub-folders of .npy mel frames (e.g. <datasets_root>/SV2TTS/encoder).")
    parser.add_argument("-u", "--umap_every", type=int, default=100,
                        help="Save a UMAP plot of a fixed set of speakers every this many steps; 0 = never "
                             "(default: %(default)s).")
    return parser


def train_from_args(argv: list[str] | None = None) -> nn.Module:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and train; returns the bare trained model."""
    args = build_parser().parse_args(argv)
    return train(options_from_args(args), args.clean_data_root, umap_every=args.umap_every)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit status 0, or 1 with one ``error:`` line."""
    return run_cli(train_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
