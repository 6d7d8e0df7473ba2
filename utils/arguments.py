"""Command-line argument types shared by the CLIs, light enough to import before ``--help`` (no torch).

Examples
--------
>>> seed_argument("42")
42
"""

from __future__ import annotations

import argparse

#: Largest seed accepted: torch.manual_seed takes 64-bit seeds, and a larger one used to fail only after the
#: models (or the training data) were loaded.
MAX_SEED = 2**64 - 1


def seed_argument(text: str) -> int:
    """``argparse`` type for ``--seed``: an integer from 0 to :data:`MAX_SEED`, refused while parsing.

    Examples
    --------
    >>> seed_argument(str(2**64))
    Traceback (most recent call last):
      ...
    argparse.ArgumentTypeError: the seed must be an integer from 0 to 18446744073709551615, not 18446744073709551616
    """
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the seed must be an integer from 0 to {MAX_SEED}, not {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"the seed must be an integer from 0 to {MAX_SEED}, not {value}")
    return value
