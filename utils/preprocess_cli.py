"""The command-line pieces the preprocessors share: corpus arguments, errors and failure warnings."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

MAX_FAILURES_SHOWN = 5


def add_corpus_arguments(parser: argparse.ArgumentParser, *, root_help: str, out_dir_help: str,
                         datasets_help: str, skip_existing_help: str) -> None:
    """The datasets root, -o, -d, -s and -n arguments, with the help each preprocessor words its own way."""
    parser.add_argument("datasets_root", type=Path, help=root_help)
    parser.add_argument("-o", "--out_dir", type=Path, default=None, help=out_dir_help)
    parser.add_argument("-d", "--datasets", default="", help=datasets_help)
    parser.add_argument("-s", "--skip_existing", action="store_true", help=skip_existing_help)
    parser.add_argument("-n", "--n_processes", type=int, default=os.cpu_count() or 1,
                        help="worker processes; 1 runs in this process (default: the number of CPUs)")


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def warn_failures(failures: Sequence[tuple[str, str]], rest_note: str) -> None:
    """Warn about the first few ``(source, reason)`` failures; ``rest_note`` follows the count of the rest."""
    for source, reason in failures[:MAX_FAILURES_SHOWN]:
        print(f"warning: skipped {source}: {reason}", file=sys.stderr)
    if len(failures) > MAX_FAILURES_SHOWN:
        print(f"warning: {len(failures) - MAX_FAILURES_SHOWN} {rest_note}", file=sys.stderr)
