"""Clone a voice from the command line.

Examples
--------
    python demo_cli.py --reference me.wav --text "Hello, this is my cloned voice." --out hello.wav
    python demo_cli.py --reference a.flac b.flac --text-file lines.txt --vocoder griffinlim --seed 3
    python demo_cli.py --reference target.wav --source me_saying_it.wav --out converted.wav

Every problem (unreadable audio, empty text, missing or mismatched model files, an unwritable output
path) ends with one ``error:`` line on stderr and exit status 1; wrong flags exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from utils.arguments import seed_argument
from utils.atomic_write import check_target_name
from utils.errors import SELF_EXPLAINING_ERRORS, one_line
from utils.signal_contract import SAMPLE_RATE, SIGNAL

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
OUTPUT_SUFFIXES = (".wav", ".flac")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Clone a voice: speak TEXT in the voice of the reference recording(s).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("-r", "--reference", nargs="+", required=True, type=Path, metavar="FILE",
                        help="reference recording(s) of the voice; several are averaged into one voice")
    text = parser.add_mutually_exclusive_group(required=True)
    text.add_argument("-t", "--text", help="text to speak (long text is split into sentences)")
    text.add_argument("--text-file", "--text_file", dest="text_file", type=Path, metavar="FILE",
                      help="UTF-8 (or UTF-16) text file, one utterance per line")
    text.add_argument("--source", type=Path, metavar="FILE",
                      help="voice conversion: say the words of this recording, with its timing (and intonation, "
                           "when the synthesizer has pitch control), in the reference voice (at most 5 minutes)")
    parser.add_argument("--source_text", "--source-text", dest="source_text", default=None, metavar="TEXT",
                        help="the words --source says (default: recognised with Whisper)")
    parser.add_argument("-o", "--out", type=Path, default=Path("demo_output.wav"),
                        help="output audio file (.wav or .flac)")
    parser.add_argument("--vocoder", choices=("wavernn", "istft", "griffinlim"), default=None,
                        help="WaveRNN (neural, RTVC's vocoder.pt), istft (this project's frame-rate neural vocoder) "
                             "or Griffin-Lim (no model file); default: the kind of the vocoder file found, "
                             "else Griffin-Lim")
    parser.add_argument("--griffin_lim_rtvc", action="store_true",
                        help="Griffin-Lim with RTVC's exact settings (power 1.5, 60 iterations) instead of the "
                             "tuned fast Griffin-Lim")
    parser.add_argument("--seed", type=seed_argument, default=None,
                        help="make synthesis and vocoding repeatable (an integer from 0 to 2**64 - 1)")
    parser.add_argument("--speaking_rate", "--rate", dest="speaking_rate", type=speaking_rate_argument, default=1.0,
                        metavar="RATE", help="speech pace: 1.25 is 25%% faster, 0.8 slower (0.5 to 2)")
    parser.add_argument("--pitch_shift", type=checked_argument("check_pitch_shift"), default=0.0,
                        metavar="SEMITONES", help="raise (or lower, if negative) the voice by this many semitones "
                                                  "(-12 to 12; needs a synthesizer with pitch control)")
    parser.add_argument("--energy", type=checked_argument("check_energy"), default=1.0, metavar="FACTOR",
                        help="loudness of the speech: 2 is twice the amplitude, 0.5 half (0.5 to 2)")
    parser.add_argument("--exact_vocoder", action="store_true",
                        help="RTVC's exact WaveRNN generation (same samples as RTVC for a seed; ~4x slower on CPU)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is available")
    parser.add_argument("--enhance", action="store_true",
                        help="trim long silences from the output and normalise its level")
    parser.add_argument("-m", "--models_dir", type=Path, default=Path("saved_models"),
                        help="folder whose default/ sub-folder holds encoder.pt, synthesizer.pt, vocoder.pt")
    parser.add_argument("-e", "--enc_model_fpath", type=Path, default=None,
                        help="encoder checkpoint (overrides --models_dir)")
    parser.add_argument("-s", "--syn_model_fpath", type=Path, default=None,
                        help="synthesizer checkpoint (overrides --models_dir)")
    parser.add_argument("-v", "--voc_model_fpath", type=Path, default=None,
                        help="vocoder checkpoint (overrides --models_dir)")
    parser.add_argument("--download", action="store_true",
                        help="download RTVC's pretrained synthesizer/vocoder into --models_dir/default when missing")
    parser.add_argument("--models_url", default=None, help="mirror URL to download the default models from")
    parser.add_argument("--models_source", type=Path, default=None, help="local folder holding the default model files")
    parser.add_argument("--play", "--stream", dest="play", action="store_true",
                        help="play the speech while it is generated: sentence 1 starts while the rest is made")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    return parser


def checked_argument(check_name: str) -> Callable[[str], float]:
    """argparse type that applies ``synthesizer.base.<check_name>`` before any work is done."""

    def parse(text: str) -> float:
        import synthesizer.base

        try:
            return getattr(synthesizer.base, check_name)(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = check_name.removeprefix("check_")  # argparse names the type in its message
    return parse


speaking_rate_argument = checked_argument("check_speaking_rate")


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print_warnings([str(message)])  # a library's warning, outside what the pipeline returns


def read_text_argument(args: argparse.Namespace) -> str:
    """The text to speak, from ``--text`` or ``--text-file`` (validated for readability only)."""
    if args.text is not None:
        return args.text
    path: Path = args.text_file
    if not path.is_file():
        raise FileNotFoundError(f"The text file '{path}' does not exist.")
    data = path.read_bytes()
    try:
        return data.decode(text_encoding(data))
    except UnicodeDecodeError:
        raise ValueError(f"The text file '{path}' is not UTF-8 (or UTF-16) text.") from None


def text_encoding(data: bytes) -> str:
    """The encoding of a text file's bytes: UTF-8 (with or without BOM), or UTF-16 with or without BOM.

    Windows editors save "Unicode" as UTF-16, sometimes without a BOM; read as UTF-8 its NULs cut the
    text at the first character in espeak. Without a BOM, UTF-16 shows as NULs at every other byte.

    Examples
    --------
    >>> [text_encoding(text) for text in (b"Hi", "Hi".encode("utf-16"), "Hi".encode("utf-16-be"))]
    ['utf-8-sig', 'utf-16', 'utf-16-be']
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if b"\0" in data and len(data) % 2 == 0:
        # Latin text in UTF-16 has a NUL in most characters, all on one side; a stray NUL is no encoding.
        even, odd, enough = data[0::2].count(0), data[1::2].count(0), len(data) // 2 * 0.3
        if odd >= enough and even == 0:
            return "utf-16-le"
        if even >= enough and odd == 0:
            return "utf-16-be"
    return "utf-8-sig"


def check_output_path(path: Path) -> None:
    """Fail before any work when the output cannot be written."""
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"The output '{path}' must end in .wav or .flac.")
    check_target_name(path)  # a name no file system takes would fail only after all the synthesis
    if path.is_dir():
        raise ValueError(f"The output '{path}' is a folder; give a file name.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"Cannot write '{path}': the folder '{folder}' does not exist.")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"Cannot write '{path}': the folder '{folder}' is not writable.")


def check_output_is_not_a_reference(out: Path, references: list[Path]) -> None:
    """Refuse an output that is one of the reference recordings (also through a link or another spelling):
    the clone would overwrite the user's own voice."""
    for reference in references:
        same = out.resolve() == reference.resolve()
        if not same and out.exists() and reference.exists():
            same = os.path.samefile(out, reference)  # a hard link, or a case-insensitive file system
        if same:
            raise ValueError(f"The output '{out}' is the reference recording '{reference}'; writing it would "
                             "overwrite that recording, so give --out another file name.")


def describe_device(device) -> str:  # noqa: ANN001
    import torch

    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return f"Using {properties.name} (CUDA, {properties.total_memory / 2**30:.1f} GiB)"
    return f"Using CPU ({torch.get_num_threads()} threads)"


def run(args: argparse.Namespace) -> int:
    if args.source_text is not None and args.source is None:
        raise ValueError("--source_text gives the words of a --source recording; add --source FILE.")
    if args.source is not None:
        return run_conversion(args)
    text = read_text_argument(args)
    check_output_path(args.out)
    check_output_is_not_a_reference(args.out, args.reference)

    from pipeline import load_reference, split_text

    # Validate every input before loading models, so mistakes are reported in a second.
    sentences, text_warnings = split_text(text)
    references = [load_reference(path) for path in args.reference]
    shown = text_warnings + [note for reference in references for note in reference.warnings]
    print_warnings(shown)

    from utils.audio_io import save_audio

    player = open_player() if args.play else None  # fail before the slow work when there is no device
    pipeline = load_models(args)

    start = time.perf_counter()
    voice = pipeline.embed_references(references)
    encoder_seconds = time.perf_counter() - start
    print_warnings([note for note in voice.warnings if note not in shown])

    if player is not None:
        result = stream_to_player(pipeline, voice, sentences, args, player)
    else:
        result = clone_in_one_go(pipeline, voice, sentences, args)
    print_warnings(result.warnings)
    save_audio(args.out, result.wav, result.sample_rate)
    print_report(args, result, encoder_seconds, voice.speech_seconds)
    return EXIT_OK


def load_models(args: argparse.Namespace):  # noqa: ANN201
    """The pipeline of the chosen models, loaded (``args.vocoder`` set to the vocoder used)."""
    import torch

    from pipeline import ClonePipeline, resolve_models

    models = resolve_models(args.models_dir, encoder=args.enc_model_fpath, synthesizer=args.syn_model_fpath,
                            vocoder=args.voc_model_fpath, vocoder_name=args.vocoder, download=args.download,
                            models_url=args.models_url, models_source=args.models_source, show_progress=not args.quiet)
    args.vocoder = models.vocoder
    for note in models.notes:
        print(note)
    device = torch.device("cpu" if args.cpu or not torch.cuda.is_available() else "cuda")
    pipeline = ClonePipeline(models.paths, device, missing_model_help="Or add --download to fetch the defaults now.",
                             exact_vocoder=args.exact_vocoder, exact_griffin_lim=args.griffin_lim_rtvc)
    print(describe_device(device))
    start = time.perf_counter()
    pipeline.load_all(args.vocoder)
    print(f"Loaded models in {time.perf_counter() - start:.2f} s")
    return pipeline


def run_conversion(args: argparse.Namespace) -> int:
    """``--source``: the recording's words and timing in the reference voice."""
    check_output_path(args.out)
    check_output_is_not_a_reference(args.out, [*args.reference, args.source])

    from pipeline import load_reference, load_source
    from synthesizer.duration.conversion import F0Register, f0_register
    from utils.audio_io import save_audio

    if args.source_text is not None and not args.source_text.strip():
        raise ValueError("--source_text is empty: give the words the recording says.")
    references = [load_reference(path) for path in args.reference]
    source = load_source(args.source)
    print_warnings([note for item in (*references, source) for note in item.warnings])
    player = open_player() if args.play else None
    pipeline = load_models(args)
    start = time.perf_counter()
    voice = pipeline.embed_references(references)
    encoder_seconds = time.perf_counter() - start
    print_warnings(voice.warnings)
    register = F0Register.combine([f0_register(reference.wav) for reference in references])
    from tqdm import tqdm

    with tqdm(total=100, desc="Converting", unit="%", disable=args.quiet, leave=False,
              bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}]") as bar:
        def progress(fraction: float, what: str) -> None:
            bar.set_description(what)
            bar.update(100 * fraction - bar.n)

        result = pipeline.convert(voice, source, source_text=args.source_text, target_register=register,
                                  vocoder=args.vocoder, seed=args.seed, enhance=args.enhance,
                                  speaking_rate=args.speaking_rate, pitch_shift=args.pitch_shift, energy=args.energy,
                                  progress=progress)
    print_warnings(result.warnings)
    save_audio(args.out, result.wav, result.sample_rate)
    if player is not None:
        try:
            player.push(result.wav)
            player.finish()
            player.wait(timeout=result.duration + 10)
        finally:
            player.stop()
    source_seconds = len(source.wav) / SAMPLE_RATE
    print(f"Words: {result.transcript}")
    print(f"Embedded the voice in {encoder_seconds:.2f} s; converted in {result.timings['total']:.2f} s")
    print(f"Wrote {args.out} ({result.duration:.2f} s from a {source_seconds:.2f} s source, "
          f"{len(result.synthesis.sentences)} part(s), {result.sample_rate} Hz)")
    return EXIT_OK


def print_warnings(notes: list[str]) -> None:
    """What the models and the audio code said about the inputs and the result (the pipeline returns it)."""
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)


def open_player():
    """A started streaming player on the default output device, or a one-line AudioUnavailable."""
    from utils.audio_devices import AudioDevices, AudioUnavailable

    devices = AudioDevices()
    available, reason = devices.available()
    if not available:
        raise AudioUnavailable(f"--play needs an audio output: {reason}")
    player = devices.streaming_player()
    player.start(SAMPLE_RATE)
    return player


def stream_to_player(pipeline, voice, sentences, args, player):  # noqa: ANN001, ANN201
    """Generate sentence by sentence and push the audio to the player as soon as it exists.

    With fast WaveRNN the first sentence arrives in pieces while it is vocoded, so playback starts
    after a fraction of its generation time.
    """
    start = time.perf_counter()
    first_audio = None

    def push(piece) -> None:  # noqa: ANN001
        nonlocal first_audio
        if first_audio is None and len(piece):
            first_audio = time.perf_counter() - start
            print(f"First audio after {first_audio:.2f} s")
        player.push(piece)

    try:
        *_, result = pipeline.stream(voice, sentences, vocoder=args.vocoder, seed=args.seed, enhance=args.enhance,
                                     on_audio=push, speaking_rate=args.speaking_rate,
                                     pitch_shift=args.pitch_shift, energy=args.energy)
        player.finish()
        player.wait(timeout=result.duration + 10)
    finally:
        player.stop()
    return result


def clone_in_one_go(pipeline, voice, sentences, args):  # noqa: ANN001, ANN201
    """Synthesize all sentences as a batch, then vocode them together (the fastest way to a file)."""
    from tqdm import tqdm

    with tqdm(total=len(sentences), desc="Synthesizing", unit="sentence", disable=args.quiet, leave=False) as bar:
        def synthesis_progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        slow = pipeline.vocoder(args.vocoder).time_share > 0.5  # a bar only where vocoding takes most of the time
        vocoder_bar = tqdm(total=100, desc="Vocoding", unit="%", disable=args.quiet or not slow,
                           leave=False, bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}]")

        def vocoder_progress(step: int, total: int, *_details) -> None:
            vocoder_bar.update(100 * step / max(total, 1) - vocoder_bar.n)

        try:
            return pipeline.clone(voice, sentences, vocoder=args.vocoder, seed=args.seed, enhance=args.enhance,
                                  synthesis_progress=synthesis_progress, vocoder_progress=vocoder_progress,
                                  speaking_rate=args.speaking_rate, pitch_shift=args.pitch_shift,
                                  energy=args.energy)
        finally:
            vocoder_bar.close()


def print_report(args, result, encoder_seconds: float, reference_seconds: float) -> None:  # noqa: ANN001
    """Per-stage seconds and real-time factors."""
    import numpy as np

    spoken_seconds = sum(mel.shape[1] for mel in result.synthesis.mels) * SIGNAL.hop_size / result.sample_rate
    rows = [("encoder", encoder_seconds, reference_seconds),
            ("synthesizer", result.timings["synthesizer"], spoken_seconds),
            (args.vocoder, result.timings[args.vocoder], result.duration)]
    print(f"{'stage':<12} {'seconds':>8} {'audio s':>8} {'RTF':>7}")
    for stage, seconds, audio_seconds in rows:
        rtf = seconds / audio_seconds if audio_seconds > 0 else float("nan")
        print(f"{stage:<12} {seconds:8.2f} {audio_seconds:8.2f} {rtf:7.3f}")
    total = sum(row[1] for row in rows)
    print(f"{'total':<12} {total:8.2f} {result.duration:8.2f} {total / max(result.duration, 1e-9):7.3f}")
    print(f"Wrote {args.out} ({result.duration:.2f} s, {len(result.synthesis.sentences)} sentence(s), "
          f"{result.sample_rate} Hz)")
    if not np.any(result.wav):
        print("warning: the output is silent.", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _print_warning
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        return run(args)
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # the CLI's promise: one line, never a traceback
        if args.debug:
            raise
        message = one_line(error)
        if not isinstance(error, (*SELF_EXPLAINING_ERRORS, MemoryError)):
            message = f"unexpected {type(error).__name__}: {message} (run with --debug for details)"
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
