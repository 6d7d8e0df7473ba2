"""Turn a training checkpoint into a small inference file: weights only, optionally in float16.

The file keeps RTVC's ``model_state`` key, the hyperparameters, the step and the symbol table, so it loads
wherever the training checkpoint loads::

    python -m utils.export_model saved_models/my_run/synthesizer.pt saved_models/shipped/synthesizer.pt --float16

>>> import torch
>>> state = {"w": torch.ones(2), "step": torch.tensor(7)}
>>> slim = slim_state_dict(state, torch.float16)
>>> slim["w"].dtype, slim["step"].dtype
(torch.float16, torch.int64)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from utils.checkpoints import (
    CheckpointError,
    extract_state_dict,
    guess_model_type,
    load_checkpoint_file,
    save_checkpoint,
)
from utils.atomic_write import check_target_name

#: Keys of our checkpoints that inference reads; everything else (optimizer, scaler, epoch...) is dropped.
KEPT_KEYS = ("model_type", "format_version", "hparams", "step", "symbols", "architecture", "espeak_version")


def slim_state_dict(state: Mapping[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """``state`` with floating-point tensors cast to ``dtype`` (None keeps them); integer buffers are kept."""
    return {
        key: (value.to(dtype) if dtype is not None and value.is_floating_point() else value).contiguous().clone()
        for key, value in state.items()
    }


def export_checkpoint(source: str | Path, target: str | Path, *, dtype: torch.dtype | None = torch.float16,
                      extra: Mapping[str, Any] | None = None, ema: bool = False) -> dict[str, Any]:
    """Write the inference-only version of ``source`` to ``target`` atomically; the payload written.

    ``dtype=None`` keeps the weights' precision; ``extra`` adds entries; ``ema`` exports the weights'
    moving average instead. :class:`CheckpointError` when ``source`` is unusable."""
    source, target = Path(source), Path(target)
    # Checked before the (possibly long) load: these would otherwise fail only at the very end.
    try:
        check_target_name(target)
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    if source.resolve() == target.resolve():
        raise CheckpointError(f"Export to another file: '{target}' is the checkpoint being read.")
    if target.is_dir():
        raise CheckpointError(f"Cannot write the export '{target}': it is an existing folder; give a file name.")
    checkpoint = load_checkpoint_file(source, "model")
    state = extract_state_dict(checkpoint, source, "model")
    if ema:
        average = checkpoint.get("ema_state")
        if not isinstance(average, dict) or set(average) != set(state):
            raise CheckpointError(f"'{source}' holds no weight average for this model: train with an EMA "
                                  "(e.g. --hparams ema_decay=0.998) or export without --ema.")
        # Integer buffers (the step count) stay the model's own.
        state = {key: average[key] if value.is_floating_point() else value for key, value in state.items()}
    model_type = checkpoint.get("model_type") or guess_model_type(state)
    payload: dict[str, Any] = {key: checkpoint[key] for key in KEPT_KEYS if key in checkpoint}
    payload.setdefault("model_type", model_type)
    payload["model_state"] = slim_state_dict(state, dtype)
    payload.update(extra or {})
    save_checkpoint(target, payload)  # any write failure becomes one CheckpointError line; no temporary is left
    return payload


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.export_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (ours or RTVC's)")
    parser.add_argument("out", type=Path, help="inference file to write")
    parser.add_argument("--float16", action="store_true", help="store the weights in float16 (half the size)")
    parser.add_argument("--ema", action="store_true", help="export the weights' moving average kept in training")
    args = parser.parse_args(argv)
    try:
        payload = export_checkpoint(args.checkpoint, args.out, dtype=torch.float16 if args.float16 else None,
                                    ema=args.ema)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    n_params = sum(t.numel() for t in payload["model_state"].values() if t.is_floating_point())
    size = args.out.stat().st_size
    print(f"Wrote the {payload.get('model_type') or 'model'} '{args.out}': {n_params / 1e6:.2f}M weights, "
          f"{size / 2**20:.1f} MiB.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
