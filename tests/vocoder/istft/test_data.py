"""Random training segments: length, the pre-emphasis history sample, errors on unusable folders."""

from __future__ import annotations

import numpy as np
import pytest

from synthesizer.metadata import TrainEntry, write_train_txt
from utils.training import TrainingError
from vocoder.istft.data import SegmentDataset
from vocoder.istft.hparams import ISTFTHParams


def make_folder(root, lengths):
    (root / "audio").mkdir()
    entries = []
    for number, n in enumerate(lengths):
        np.save(root / "audio" / f"audio-u{number}.npy", np.arange(n, dtype=np.float32))
        entries.append(TrainEntry.from_basename(f"u{number}", n, 1 + n // 200, "text"))
    write_train_txt(root / "train.txt", entries)
    return root


def test_segments_carry_their_history_sample(tmp_path):
    hp = ISTFTHParams(segment_frames=4)
    data = SegmentDataset.from_folder(make_folder(tmp_path, [800, 5000, 100]), hp)
    assert len(data) == 2  # the 100-sample utterance is shorter than one segment
    np.random.seed(0)
    exact = data[0].numpy()  # the only window of an 800-sample utterance starts at 0
    assert exact.shape == (801,) and exact[0] == 0.0 and np.array_equal(exact[1:], np.arange(800))
    for _ in range(20):
        window = data[1].numpy()
        assert window.shape == (801,)
        if window[1] > 0:  # a window inside the utterance: the sample before it is its history
            assert np.array_equal(np.diff(window), np.ones(800))


def test_unusable_folders_are_one_line_errors(tmp_path):
    with pytest.raises(TrainingError, match="train.txt"):
        SegmentDataset.from_folder(tmp_path, ISTFTHParams())
    with pytest.raises(TrainingError, match="no utterance"):
        SegmentDataset.from_folder(make_folder(tmp_path, [100]), ISTFTHParams())


def test_gta_items_pair_each_segment_with_the_synthesizer_frames_centred_on_it(tmp_path, speech_clip):
    from utils.mel import melspectrogram
    from synthesizer.hparams import SynthesizerHParams
    from vocoder.istft.model import build_istft_vocoder

    hp = ISTFTHParams(segment_frames=12)
    (tmp_path / "audio").mkdir()
    (tmp_path / "gta" / "mels_gta").mkdir(parents=True)
    # (80, T) of the whole utterance, as preprocessing writes it.
    mel = melspectrogram(speech_clip, SynthesizerHParams())
    entry = TrainEntry.from_basename("u0", len(speech_clip), mel.shape[1], "text")
    np.save(tmp_path / "audio" / entry.audio_name, speech_clip)
    np.save(tmp_path / "gta" / "mels_gta" / entry.mel_name, mel.T.astype(np.float32))
    write_train_txt(tmp_path / "train.txt", [entry])
    write_train_txt(tmp_path / "gta" / "synthesized.txt", [entry])
    data = SegmentDataset.from_folder(tmp_path, hp, gta_dir=tmp_path / "gta")
    front = build_istft_vocoder(hp).front
    np.random.seed(1)
    for _ in range(5):
        segment, gta = data[0]
        assert segment.shape == (1 + 12 * 200,) and gta.shape == (80, 13)
        # Inside the segment (away from its edges, where the analysis pads) the segment's own mel is the
        # GTA mel: the frames line up.
        own = front.mel_from_wave(segment[None, 1:], segment[None, 0])[0].numpy()  # (80, 13)
        np.testing.assert_allclose(own[:, 2:-2], gta.numpy()[:, 2:-2], atol=2e-3)


def test_gta_folders_must_hold_every_listed_mel(tmp_path):
    root = make_folder(tmp_path, [5000])
    (root / "gta").mkdir()
    write_train_txt(root / "gta" / "synthesized.txt", [TrainEntry.from_basename("u0", 5000, 26, "text")])
    with pytest.raises(TrainingError, match="mels_gta"):
        SegmentDataset.from_folder(root, ISTFTHParams(segment_frames=4), gta_dir=root / "gta")
    with pytest.raises(TrainingError, match="synthesized.txt"):
        SegmentDataset.from_folder(root, ISTFTHParams(segment_frames=4), gta_dir=root / "missing")


def _gta_folder(root, mel: np.ndarray | bytes):
    """A data folder of one 5000-sample utterance (26 frames) whose GTA mel file holds ``mel``."""
    make_folder(root, [5000])
    (root / "gta" / "mels_gta").mkdir(parents=True)
    write_train_txt(root / "gta" / "synthesized.txt", [TrainEntry.from_basename("u0", 5000, 26, "text")])
    path = root / "gta" / "mels_gta" / "mel-u0.npy"
    if isinstance(mel, bytes):
        path.write_bytes(mel)
    else:
        np.save(path, mel)
    return root / "gta"


GOOD = np.zeros((26, 80), np.float32)
JUNK_MELS = {
    "transposed": (GOOD.T, "it is transposed"),
    "40 bands": (np.zeros((26, 40), np.float32), r"shape \(26, 40\), not \(26, 80\)"),
    "too short": (np.zeros((5, 80), np.float32), r"shape \(5, 80\), not \(26, 80\)"),
    "one-dimensional": (np.zeros(2080, np.float32), "float32 array of shape"),
    "integers": (np.zeros((26, 80), np.int64), "int64 array"),
    "NaN": (np.where(np.eye(26, 80) > 0, np.nan, 0).astype(np.float32), "NaN or infinite"),
    "garbage": (b"\x93NUMPY garbage, not an array" * 10, "not a NumPy array file"),
    "truncated": (None, "not a NumPy array file"),
}


@pytest.mark.parametrize("kind", list(JUNK_MELS))
def test_junk_gta_mels_are_refused_in_one_line_before_training(tmp_path, kind):
    """Issue 26: junk or transposed mels gave a DataLoader traceback and a hang; 40-band ones a traceback."""
    mel, message = JUNK_MELS[kind]
    if mel is None:
        import io

        buffer = io.BytesIO()
        np.save(buffer, GOOD)
        mel = buffer.getvalue()[:-100]
    gta = _gta_folder(tmp_path, mel)
    with pytest.raises(TrainingError, match=message) as info:
        SegmentDataset.from_folder(tmp_path, ISTFTHParams(segment_frames=4), gta_dir=gta)
    assert "\n" not in str(info.value) and "mel-u0.npy" in str(info.value)
    assert len(SegmentDataset.from_folder(tmp_path, ISTFTHParams(segment_frames=4), gta_dir=_regood(gta))) == 1


def _regood(gta):
    np.save(gta / "mels_gta" / "mel-u0.npy", GOOD)
    return gta


def test_an_empty_gta_folder_names_the_gta_step(tmp_path):
    make_folder(tmp_path, [5000])
    (tmp_path / "gta").mkdir()
    with pytest.raises(TrainingError, match="python -m vocoder.preprocess"):
        SegmentDataset.from_folder(tmp_path, ISTFTHParams(segment_frames=4), gta_dir=tmp_path / "gta")
