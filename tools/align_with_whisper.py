"""Word alignments for a LibriSpeech-layout corpus that lacks them, from Whisper's word timestamps, in
RTVC's format, written into a mirror of the corpus (usage: docs/synthesizer.md)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from utils.asr import ASR_SAMPLE_RATE, AsrUnavailableError, Transcriber
from utils.atomic_write import atomic_write
from utils.audio_io import AudioError, load_audio_with_rate

AUDIO_SUFFIXES = (".flac", ".wav")


def alignment_line(utterance_id: str, words: Sequence[tuple[str, float, float]], duration: float,
                   min_pause: float = 0.1) -> str:
    """RTVC's alignment line from ``(word, start, end)`` triples.

    >>> alignment_line("1-2-0003", [(" Hello,", 0.3, 0.7), (" world!", 1.2, 1.6)], 2.0)
    '1-2-0003 ",HELLO,,WORLD," "0.3,0.7,1.2,1.6,2"'
    """
    tokens: list[str] = []
    ends: list[float] = []
    previous_end = 0.0
    for text, start, end in words:
        word = re.sub(r"[^A-Z']", "", text.upper())
        if not word:
            continue
        start, end = max(start, previous_end), max(end, start, previous_end)
        if start - previous_end >= min_pause or not tokens:
            tokens.append("")
            ends.append(round(start, 3))
        tokens.append(word)
        ends.append(round(end, 3))
        previous_end = end
    tokens.append("")
    ends.append(round(max(duration, previous_end), 3))
    return f'{utterance_id} "{",".join(tokens)}" "{",".join(f"{t:g}" for t in ends)}"'


def _link(source: Path, target: Path) -> None:
    if not target.exists():
        target.symlink_to(source.resolve())


def align_corpus(source: Path, out: Path, transcriber: Transcriber, min_pause: float) -> tuple[int, int]:
    """Mirror ``source`` into ``out`` with one ``.alignment.txt`` per chapter; returns (aligned, failed)."""
    chapters = sorted({audio.parent for suffix in AUDIO_SUFFIXES for audio in source.glob(f"*/*/*{suffix}")})
    aligned = failed = 0
    for chapter in tqdm(chapters, desc="Aligning", unit="chapter"):
        target = out / chapter.relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        lines = []
        for file in sorted(chapter.iterdir()):
            if file.is_file() and not file.name.endswith(".alignment.txt"):
                _link(file, target / file.name)
            if file.suffix not in AUDIO_SUFFIXES:
                continue
            try:
                wav, rate = load_audio_with_rate(file, ASR_SAMPLE_RATE)
            except AudioError as error:
                print(f"warning: skipped {file}: {error}", file=sys.stderr)
                failed += 1
                continue
            words = transcriber.words(wav)
            lines.append(alignment_line(file.stem, words, len(wav) / rate, min_pause))
            aligned += 1
        if lines:
            speaker, book = chapter.parent.name, chapter.name
            with atomic_write(target / f"{speaker}-{book}.alignment.txt") as stream:
                stream.write(("\n".join(lines) + "\n").encode("utf-8"))
    return aligned, failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a LibriSpeech-layout folder (<speaker>/<chapter>/<id>.flac)")
    parser.add_argument("out", type=Path, help="mirror to write (links to the audio plus alignment files)")
    parser.add_argument("--min_pause", type=float, default=0.1, help="shortest gap, in seconds, listed as a pause")
    parser.add_argument("--threads", type=int, default=0, help="ASR threads (0: all cores)")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        print(f"error: '{args.source}' is not a folder.", file=sys.stderr)
        return 1
    if args.out.resolve() == args.source.resolve():
        print("error: write the mirror to another folder than the corpus itself.", file=sys.stderr)
        return 1
    try:
        transcriber = Transcriber.load(threads=args.threads)
    except AsrUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    aligned, failed = align_corpus(args.source, args.out, transcriber, args.min_pause)
    print(f"Aligned {aligned} utterance(s) into '{args.out}'" + (f"; {failed} unreadable" if failed else "") + ".")
    return 0 if aligned else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
