"""Find the utterances of training corpora under a datasets root, for both preprocessors.

Layouts and naming rules: docs/corpora.md.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> for speaker in ("alice", "bob"):
...     (root / "voices" / speaker).mkdir(parents=True)
...     (root / "voices" / speaker / "take 1.wav").touch()
>>> [(c.name, c.kind) for c in find_corpora(root)]
[('voices', 'speaker_folders')]
>>> [(u.speaker, u.local_name, u.name) for u in collect_utterances(find_corpora(root))]
[('voices_alice', 'take_1', 'voices_alice_take_1'), ('voices_bob', 'take_1', 'voices_bob_take_1')]
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from utils.errors import UserError


#: The files discovery counts as audio (training and the toolbox's dataset browser).
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".ogg")
# RTVC's encoder dataset names (encoder_preprocess.py -d).
DATASET_ALIASES = {
    "librispeech_other": "LibriSpeech/train-other-500",
    "voxceleb1": "VoxCeleb1/wav",
    "voxceleb2": "VoxCeleb2/dev/aac",
}
# The preprocessors write here by default; it holds no corpus and may be huge, so it is never searched.
OUTPUT_FOLDER = "SV2TTS"
VOXCELEB1_META = "vox1_meta.csv"
VOXCELEB1_NATIONALITIES = frozenset({"australia", "canada", "ireland", "uk", "usa"})
FSDD_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class Kind:
    """The names of the recognised layouts (``Corpus.kind`` here, ``Dataset.kind`` in the toolbox)."""

    LIBRISPEECH = "librispeech"
    LIBRITTS = "libritts"
    VOXCELEB = "voxceleb"
    VCTK = "vctk"
    LJSPEECH = "ljspeech"
    FSDD = "fsdd"
    TEXT_FOLDER = "text_folder"
    SPEAKER_FOLDERS = "speaker_folders"


_SPECIFIC_KINDS = (Kind.LIBRISPEECH, Kind.LIBRITTS, Kind.VOXCELEB, Kind.VCTK, Kind.LJSPEECH, Kind.FSDD)
_GENERIC_KINDS = (Kind.TEXT_FOLDER, Kind.SPEAKER_FOLDERS)
# Kinds whose utterance ids already name the speaker, so the id alone is unique in the corpus.
_SELF_NAMING_KINDS = frozenset({Kind.LIBRISPEECH, Kind.LIBRITTS, Kind.VCTK, Kind.LJSPEECH, Kind.FSDD})
_UNSAFE_CHARACTERS = re.compile(r"[^\w.\-]+")
_MAX_NAME_LENGTH = 150  # output names get prefixes and suffixes; file names stop at 255 bytes
_DIGITS = re.compile(r"^\d+$")
_VOXCELEB_ID = re.compile(r"^id\d+$")
_FSDD_STEM = re.compile(r"^(\d)_(.+)_\d+$")
_DISCOVERY_DEPTH = 3


class CorpusError(UserError, ValueError):
    """A datasets root or dataset cannot be used; the message is one sentence."""


@dataclass(frozen=True)
class Alignment:
    """Word-level forced alignment of one LibriSpeech utterance."""

    words: tuple[str, ...]  # in order; "" is a silence (the first and last entries are silences)
    end_times: tuple[float, ...]  # seconds; a word starts where the previous one ends


@dataclass(frozen=True)
class CorpusUtterance:
    """One audio file of a corpus; ``speaker``, ``name`` and ``local_name`` follow docs/corpora.md."""

    speaker: str
    audio_path: Path  # as found under the datasets root (symbolic links are not resolved)
    text: str | None  # None when the corpus has no transcript for this file
    name: str
    local_name: str = ""
    dataset: str = ""  # Corpus.name
    alignment: Alignment | None = None  # LibriSpeech's, when an *.alignment.txt lists the utterance


@dataclass(frozen=True)
class Corpus:
    """A dataset folder and its layout.

    >>> Corpus("LibriSpeech/train-clean-100", Path("/d/LibriSpeech/train-clean-100"), "librispeech").label
    'LibriSpeech_train-clean-100'
    """

    name: str  # relative to the datasets root (LibriSpeech/train-clean-100), else the folder's name
    path: Path  # the folder the layout describes (for VCTK the wav48* folder)
    kind: str  # a Kind

    @property
    def label(self) -> str:
        """The name with separators replaced by ``_`` (RTVC's log-file and speaker prefix)."""
        return safe_name(self.name.replace("/", "_"))

    def utterances(self, with_text: bool = True) -> list[CorpusUtterance]:
        """Every utterance, sorted by speaker then file name; ``with_text=False`` reads no transcripts."""
        found = _LISTERS[self.kind](self, with_text)
        return _name_utterances(self, found)


@dataclass(frozen=True)
class _Found:

    speaker_key: str  # speaker folder relative to the corpus ("" = the corpus is the speaker)
    speaker_dir: Path  # local names are relative to this folder
    audio_path: Path
    text: str | None = None
    utterance_id: str | None = None  # the corpus's own id, for self-naming kinds
    alignment: Alignment | None = None


# -- Names -----------------------------------------------------------------------------------------
def safe_name(text: str) -> str:
    """``text`` made safe for file names and the ``,``/``|`` separated index files.

    >>> safe_name("Smith, John/take 1")
    'Smith_John_take_1'
    >>> safe_name(".hidden")
    '_hidden'
    """
    name = _UNSAFE_CHARACTERS.sub("_", text)
    if name.startswith("."):
        name = "_" + name[1:]
    if len(name) > _MAX_NAME_LENGTH:
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:10]
        name = f"{name[: _MAX_NAME_LENGTH - 11]}-{digest}"
    return name or "_"


def _deduplicate(names: Sequence[str]) -> list[str]:
    """Append ``-2``, ``-3``… to repeated names (in order), so all are distinct."""
    taken = set(names)
    seen: Counter[str] = Counter()
    result = []
    for name in names:
        seen[name] += 1
        if seen[name] == 1:
            result.append(name)
            continue
        index = seen[name]
        while f"{name}-{index}" in taken:
            index += 1
        taken.add(f"{name}-{index}")
        result.append(f"{name}-{index}")
    return result


def _name_utterances(corpus: Corpus, found: list[_Found]) -> list[CorpusUtterance]:
    found = sorted(found, key=lambda f: (natural_key(f.speaker_key), natural_key(str(f.audio_path))))
    label = corpus.label
    speakers = [safe_name(f"{label}_{f.speaker_key.replace('/', '_')}") if f.speaker_key else label for f in found]
    local_names = [
        safe_name("_".join(f.audio_path.relative_to(f.speaker_dir).with_suffix("").parts)) for f in found
    ]
    # Local names only need to be unique per speaker; ``x.wav`` and ``x.flac`` side by side would clash.
    by_speaker: dict[str, list[int]] = {}
    for index, speaker in enumerate(speakers):
        by_speaker.setdefault(speaker, []).append(index)
    for indices in by_speaker.values():
        for index, unique in zip(indices, _deduplicate([local_names[i] for i in indices])):
            local_names[index] = unique
    utterances = []
    for item, speaker, local_name in zip(found, speakers, local_names):
        if corpus.kind in _SELF_NAMING_KINDS and item.utterance_id:
            name = safe_name(item.utterance_id)
        else:
            name = safe_name(f"{speaker}_{local_name}")
        utterances.append(
            CorpusUtterance(speaker, item.audio_path, item.text, name, local_name, corpus.name, item.alignment)
        )
    return _unique_names(utterances)


def _unique_names(utterances: list[CorpusUtterance]) -> list[CorpusUtterance]:
    """Make ``name`` unique: clashing names get their speaker as a prefix, then a counter."""
    counts = Counter(u.name for u in utterances)
    if all(count == 1 for count in counts.values()):
        return utterances
    prefixed = [
        replace(u, name=safe_name(f"{u.speaker}_{u.local_name}")) if counts[u.name] > 1 else u
        for u in utterances
    ]
    names = _deduplicate([u.name for u in prefixed])
    return [replace(u, name=name) for u, name in zip(prefixed, names)]


def collect_utterances(corpora: Iterable[Corpus], with_text: bool = True) -> list[CorpusUtterance]:
    """The utterances of several corpora (see :meth:`Corpus.utterances`), with ``name`` unique across all."""
    utterances: list[CorpusUtterance] = []
    for corpus in corpora:
        utterances.extend(corpus.utterances(with_text))
    return _unique_names(utterances)


def group_by_speaker(utterances: Iterable[CorpusUtterance]) -> dict[str, list[CorpusUtterance]]:
    """``{speaker: [utterances...]}`` in first-seen order.

    >>> u = [CorpusUtterance("a", Path("1.wav"), None, "a_1"), CorpusUtterance("b", Path("2.wav"), None, "b_2")]
    >>> {speaker: len(items) for speaker, items in group_by_speaker(u).items()}
    {'a': 1, 'b': 1}
    """
    groups: dict[str, list[CorpusUtterance]] = {}
    for utterance in utterances:
        groups.setdefault(utterance.speaker, []).append(utterance)
    return groups


# -- File-system helpers ---------------------------------------------------------------------------
def natural_key(text: str) -> tuple:
    """Sort key comparing digit runs as numbers; case only breaks ties.

    >>> sorted(["utt_10", "Utt_2", "utt_2"], key=natural_key)
    ['Utt_2', 'utt_2', 'utt_10']
    """
    # re.split with a capturing group alternates text and digits, so every position has one type.
    parts = re.split(r"(\d+)", text)
    return tuple(int(part) if index % 2 else part.lower() for index, part in enumerate(parts)), text


def list_folder(folder: Path) -> tuple[list[str], list[str]]:
    """Non-hidden sub-folder names and file names of ``folder`` (symbolic links followed); sorted."""
    dirs: list[str] = []
    files: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir():
                        dirs.append(entry.name)
                    elif entry.is_file():
                        files.append(entry.name)
                except OSError:  # a dangling link or an entry removed during the scan
                    continue
    except OSError:
        pass  # an unreadable folder looks empty rather than failing the whole discovery
    return sorted(dirs, key=natural_key), sorted(files, key=natural_key)


def is_audio(file_name: str) -> bool:
    return file_name.lower().endswith(AUDIO_EXTENSIONS)


def fsdd_parts(file_name: str) -> tuple[int, str] | None:
    """``(digit, speaker)`` of a free-spoken-digit-dataset file name, else ``None``.

    >>> fsdd_parts("7_jackson_32.wav"), fsdd_parts("take_1.wav")
    ((7, 'jackson'), None)
    """
    match = _FSDD_STEM.match(Path(file_name).stem)
    return (int(match.group(1)), match.group(2)) if match else None


def walk_audio(folder: Path) -> list[Path]:
    """Every audio file under ``folder`` (recursive, hidden entries skipped, symbolic links followed once)."""
    found: list[Path] = []
    visited: set[str] = set()
    pending = [folder]
    while pending:
        current = pending.pop()
        real = os.path.realpath(current)
        if real in visited:  # a link cycle, or two links to one folder
            continue
        visited.add(real)
        dirs, files = list_folder(current)
        found.extend(current / file for file in files if is_audio(file))
        pending.extend(current / child for child in reversed(dirs))
    return found


def has_audio(folder: Path, depth: int) -> bool:
    dirs, files = list_folder(folder)
    if any(is_audio(file) for file in files):
        return True
    return depth > 0 and any(has_audio(folder / child, depth - 1) for child in dirs)


def _read_text(path: Path) -> str | None:
    """A transcript file's text on one line, or ``None`` when missing, unreadable or empty."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    text = " ".join(text.split())
    return text or None


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


# -- Transcripts and alignments --------------------------------------------------------------------
def _read_librispeech_transcripts(folder: Path) -> dict[str, str]:
    """``{utterance id: text}`` from every ``*.trans.txt`` in ``folder`` (lines ``<id> TEXT``)."""
    transcripts: dict[str, str] = {}
    for file in list_folder(folder)[1]:
        if file.endswith(".trans.txt"):
            for line in _read_lines(folder / file):
                parts = line.strip().split(maxsplit=1)
                if len(parts) == 2:
                    transcripts[parts[0]] = " ".join(parts[1].split())
    return transcripts


def parse_alignment_line(line: str) -> tuple[str, Alignment] | None:
    """One line of a LibriSpeech ``*.alignment.txt``, or ``None`` when malformed.

    >>> utt, alignment = parse_alignment_line('19-198-0001 ",HELLO,,WORLD," "0.5,0.9,1.4,1.8,2.0"')
    >>> utt, alignment.words, alignment.end_times
    ('19-198-0001', ('', 'HELLO', '', 'WORLD', ''), (0.5, 0.9, 1.4, 1.8, 2.0))
    """
    parts = line.strip().split(" ")
    if len(parts) != 3:
        return None
    utterance_id, words_field, times_field = parts
    words = tuple(words_field.strip('"').split(","))
    try:
        end_times = tuple(float(value) for value in times_field.strip('"').split(","))
    except ValueError:
        return None
    if len(words) != len(end_times) or not words:
        return None
    return utterance_id, Alignment(words, end_times)


def _read_alignments(folder: Path) -> dict[str, Alignment]:
    alignments: dict[str, Alignment] = {}
    for file in list_folder(folder)[1]:
        if file.endswith(".alignment.txt"):
            for line in _read_lines(folder / file):
                parsed = parse_alignment_line(line)
                if parsed is not None:
                    alignments[parsed[0]] = parsed[1]
    return alignments


# -- Layout listers --------------------------------------------------------------------------------
def _list_librispeech(corpus: Corpus, with_text: bool) -> list[_Found]:
    found = []
    for speaker in list_folder(corpus.path)[0]:
        speaker_dir = corpus.path / speaker
        transcripts: dict[Path, dict[str, str]] = {}
        alignments: dict[Path, dict[str, Alignment]] = {}
        for audio in walk_audio(speaker_dir):
            text = alignment = None
            if with_text:
                folder = audio.parent
                if folder not in transcripts:
                    transcripts[folder] = _read_librispeech_transcripts(folder)
                    alignments[folder] = _read_alignments(folder)
                text = transcripts[folder].get(audio.stem)
                alignment = alignments[folder].get(audio.stem)
            found.append(_Found(speaker, speaker_dir, audio, text, audio.stem, alignment))
    return found


def _list_libritts(corpus: Corpus, with_text: bool) -> list[_Found]:
    found = []
    for speaker in list_folder(corpus.path)[0]:
        speaker_dir = corpus.path / speaker
        for audio in walk_audio(speaker_dir):
            text = None
            if with_text:
                text = _read_text(audio.with_suffix(".normalized.txt")) or _read_text(
                    audio.with_suffix(".original.txt")
                )
            found.append(_Found(speaker, speaker_dir, audio, text, audio.stem))
    return found


def _voxceleb_speakers(corpus: Corpus) -> list[str]:
    """Speaker folders, restricted to RTVC's anglophone nationalities when ``vox1_meta.csv`` is there."""
    speakers = list_folder(corpus.path)[0]
    meta = corpus.path.parent / VOXCELEB1_META
    if not meta.is_file():
        return speakers
    keep = set()
    for line in _read_lines(meta)[1:]:  # the first line is a header
        fields = line.split("\t")
        if len(fields) >= 4 and fields[3].strip().lower() in VOXCELEB1_NATIONALITIES:
            keep.add(fields[0].strip())
    return [speaker for speaker in speakers if speaker in keep]


def _list_voxceleb(corpus: Corpus, with_text: bool) -> list[_Found]:
    found = []
    for speaker in _voxceleb_speakers(corpus):
        speaker_dir = corpus.path / speaker
        found.extend(_Found(speaker, speaker_dir, audio) for audio in walk_audio(speaker_dir))
    return found


def _list_vctk(corpus: Corpus, with_text: bool) -> list[_Found]:
    text_root = corpus.path.parent / "txt"
    found = []
    for speaker in list_folder(corpus.path)[0]:
        speaker_dir = corpus.path / speaker
        for file in list_folder(speaker_dir)[1]:
            if not is_audio(file):
                continue
            stem = Path(file).stem
            if stem.endswith("_mic2"):  # VCTK 0.92 has every sentence from two microphones
                continue
            utterance_id = stem.removesuffix("_mic1")
            text = _read_text(text_root / speaker / f"{utterance_id}.txt") if with_text else None
            found.append(_Found(speaker, speaker_dir, speaker_dir / file, text, utterance_id))
    return found


def _read_ljspeech_metadata(path: Path) -> dict[str, str]:
    texts = {}
    for line in _read_lines(path):
        fields = line.split("|")
        if len(fields) < 2 or not fields[0].strip():
            continue
        text = fields[2] if len(fields) > 2 and fields[2].strip() else fields[1]
        text = " ".join(text.split())
        if text:
            texts[fields[0].strip()] = text
    return texts


def _list_ljspeech(corpus: Corpus, with_text: bool) -> list[_Found]:
    wavs = corpus.path / "wavs"
    texts = _read_ljspeech_metadata(corpus.path / "metadata.csv") if with_text else {}
    return [
        _Found("", wavs, audio, texts.get(audio.stem), audio.stem)
        for audio in walk_audio(wavs)
    ]


def _list_fsdd(corpus: Corpus, with_text: bool) -> list[_Found]:
    found = []
    for file in list_folder(corpus.path)[1]:
        parts = fsdd_parts(file) if is_audio(file) else None
        if parts:
            text = FSDD_WORDS[parts[0]] if with_text else None
            found.append(_Found(parts[1], corpus.path, corpus.path / file, text, Path(file).stem))
    return found


def _list_text_folder(corpus: Corpus, with_text: bool) -> list[_Found]:
    found = []
    for audio in walk_audio(corpus.path):
        speaker_key = audio.parent.relative_to(corpus.path).as_posix()
        text = _read_text(audio.with_suffix(".txt")) if with_text else None
        found.append(_Found("" if speaker_key == "." else speaker_key, audio.parent, audio, text))
    return found


def _list_speaker_folders(corpus: Corpus, with_text: bool) -> list[_Found]:
    found = []
    for speaker in list_folder(corpus.path)[0]:
        speaker_dir = corpus.path / speaker
        found.extend(_Found(speaker, speaker_dir, audio) for audio in walk_audio(speaker_dir))
    return found


_LISTERS = {
    Kind.LIBRISPEECH: _list_librispeech,
    Kind.LIBRITTS: _list_libritts,
    Kind.VOXCELEB: _list_voxceleb,
    Kind.VCTK: _list_vctk,
    Kind.LJSPEECH: _list_ljspeech,
    Kind.FSDD: _list_fsdd,
    Kind.TEXT_FOLDER: _list_text_folder,
    Kind.SPEAKER_FOLDERS: _list_speaker_folders,
}


# -- Layout detection ------------------------------------------------------------------------------
def _libri_kind(folder: Path, dirs: list[str]) -> str | None:
    """``librispeech``/``libritts`` when ``folder`` is ``<speaker id>/<chapter id>/<files>``."""
    if not dirs or not all(_DIGITS.match(d) for d in dirs):
        return None
    for speaker in dirs[:3]:
        chapters = [c for c in list_folder(folder / speaker)[0] if _DIGITS.match(c)]
        for chapter in chapters[:2]:
            files = list_folder(folder / speaker / chapter)[1]
            if any(f.endswith(".trans.txt") for f in files):
                return Kind.LIBRISPEECH
            if any(f.endswith((".normalized.txt", ".original.txt")) for f in files):
                return Kind.LIBRITTS
            suffixes = {Path(f).suffix.lower() for f in files}
            if ".flac" in suffixes:
                return Kind.LIBRISPEECH
            if ".wav" in suffixes:
                return Kind.LIBRITTS
    return None


def fsdd_speakers(file_names: Iterable[str]) -> list[str]:
    """The speakers of a flat FSDD folder in natural order; ``[]`` unless every audio file follows the
    FSDD pattern and there are at least two speakers.

    >>> fsdd_speakers(["0_bo_1.wav", "1_ann_2.wav", "notes.txt"]), fsdd_speakers(["0_bo_1.wav", "x.wav"])
    (['ann', 'bo'], [])
    """
    speakers = set()
    for file in filter(is_audio, file_names):
        parts = fsdd_parts(file)
        if parts is None:
            return []
        speakers.add(parts[1])
    return sorted(speakers, key=natural_key) if len(speakers) >= 2 else []


def _has_transcribed_audio(folder: Path, depth: int) -> bool:
    dirs, files = list_folder(folder)
    stems = {Path(f).stem for f in files if f.endswith(".txt")}
    if any(is_audio(f) and Path(f).stem in stems for f in files):
        return True
    return depth > 0 and any(_has_transcribed_audio(folder / d, depth - 1) for d in dirs)


def _identify_specific(folder: Path) -> tuple[str, Path] | None:
    dirs, files = list_folder(folder)
    if "metadata.csv" in files and "wavs" in dirs:
        return Kind.LJSPEECH, folder
    for audio_dir in ("wav48_silence_trimmed", "wav48"):
        if audio_dir in dirs and "txt" in dirs:
            return Kind.VCTK, folder / audio_dir
    if folder.name.startswith("wav48") and (folder.parent / "txt").is_dir() and dirs:
        return Kind.VCTK, folder
    libri = _libri_kind(folder, dirs)
    if libri:
        return libri, folder
    if dirs and all(_VOXCELEB_ID.match(d) for d in dirs):
        return Kind.VOXCELEB, folder
    if fsdd_speakers(files):
        return Kind.FSDD, folder
    return None


def _identify_generic(folder: Path, depth: int) -> str | None:
    if _has_transcribed_audio(folder, depth):
        return Kind.TEXT_FOLDER
    # A sub-folder that is a corpus of its own (FSDD's recordings/) is not a speaker of this folder.
    dirs = list_folder(folder)[0]
    if any(has_audio(folder / d, depth - 1) and _identify_specific(folder / d) is None for d in dirs):
        return Kind.SPEAKER_FOLDERS
    return None


_DEEP = 64  # "no limit" for recursive checks of a folder the user named explicitly


def detect_layout(folder: str | Path) -> tuple[str, Path] | None:
    """``(kind, folder)`` of ``folder``, or ``None``; the folder differs only for a VCTK root.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "wavs").mkdir(); (folder / "metadata.csv").touch()
    >>> detect_layout(folder)[0]
    'ljspeech'
    """
    folder = Path(folder)
    specific = _identify_specific(folder)
    if specific:
        return specific
    generic = _identify_generic(folder, _DEEP)
    return (generic, folder) if generic else None


# -- Finding and selecting corpora -----------------------------------------------------------------
def check_datasets_root(datasets_root: str | Path) -> Path:
    root = Path(datasets_root).expanduser()
    if not root.exists():
        raise CorpusError(f"The datasets root '{root}' does not exist.")
    if not root.is_dir():
        raise CorpusError(f"The datasets root '{root}' is not a folder.")
    return root


def _corpus_name(folder: Path, root: Path) -> str:
    for candidate, base in ((folder, root), (folder.resolve(), root.resolve())):
        try:
            relative = candidate.relative_to(base).as_posix()
        except ValueError:
            continue
        return relative if relative != "." else base.name
    return folder.name


def _search(folder: Path, root: Path, max_depth: int, kinds: Sequence[str]) -> list[Corpus]:
    """Corpora strictly below ``folder``, breadth-first up to ``max_depth`` (docs/corpora.md)."""
    found: list[Corpus] = []
    pending = [(folder / child, 1) for child in list_folder(folder)[0] if child != OUTPUT_FOLDER]
    while pending:
        current, depth = pending.pop(0)
        identified = _identify_specific(current)
        if identified is None and any(kind in kinds for kind in _GENERIC_KINDS):
            generic = _identify_generic(current, 1)
            identified = (generic, current) if generic else None
        if identified and identified[0] in kinds:
            kind, path = identified
            found.append(Corpus(_corpus_name(path, root), path, kind))
        elif identified is None and depth < max_depth:
            pending.extend((current / child, depth + 1) for child in list_folder(current)[0])
    return sorted(found, key=lambda corpus: natural_key(corpus.name))


def find_corpora(datasets_root: str | Path, max_depth: int = _DISCOVERY_DEPTH) -> list[Corpus]:
    """Every recognised corpus under ``datasets_root``, sorted by name; :class:`CorpusError` for a bad root."""
    root = check_datasets_root(datasets_root)
    found = _search(root, root, max_depth, _SPECIFIC_KINDS + _GENERIC_KINDS)
    if not found:
        layout = detect_layout(root)
        if layout:
            found = [Corpus(_corpus_name(layout[1], root), layout[1], layout[0])]
    return found


def resolve_corpora(datasets_root: str | Path, dataset: str) -> list[Corpus]:
    """The corpora one ``-d`` entry names: an RTVC alias (:data:`DATASET_ALIASES`), or a path
    relative to the root or absolute; a folder holding corpora gives all of them."""
    root = check_datasets_root(datasets_root)
    relative = DATASET_ALIASES.get(dataset, dataset)
    folder = Path(relative).expanduser()
    folder = folder if folder.is_absolute() else root / folder
    if not folder.is_dir():
        where = f"under the datasets root '{root}'" if not Path(relative).is_absolute() else "or is not a folder"
        raise CorpusError(f"The dataset '{dataset}' ({folder}) does not exist {where}.")
    specific = _identify_specific(folder)
    if specific:
        return [Corpus(_corpus_name(specific[1], root), specific[1], specific[0])]
    inner = _search(folder, root, _DISCOVERY_DEPTH, _SPECIFIC_KINDS)
    if inner:
        return inner
    generic = _identify_generic(folder, _DEEP)
    if generic:
        return [Corpus(_corpus_name(folder, root), folder, generic)]
    raise CorpusError(
        f"The dataset folder '{folder}' matches no known layout (LibriSpeech, LibriTTS, VCTK, VoxCeleb, "
        "LJSpeech metadata.csv + wavs/, audio files with .txt transcripts, or speaker sub-folders of audio)."
    )


def select_corpora(datasets_root: str | Path, datasets: Sequence[str] | None = None) -> list[Corpus]:
    """The corpora named by ``datasets`` without duplicates, or all under the root when empty."""
    names = [name.strip() for name in datasets or () if name.strip()]
    if not names:
        corpora = find_corpora(datasets_root)
        if not corpora:
            raise CorpusError(
                f"No recognised dataset under '{datasets_root}'; name the dataset folders with -d."
            )
        return corpora
    corpora = []
    seen: set[str] = set()
    for name in names:
        for corpus in resolve_corpora(datasets_root, name):
            key = os.path.realpath(corpus.path)
            if key not in seen:
                seen.add(key)
                corpora.append(corpus)
    return corpora
