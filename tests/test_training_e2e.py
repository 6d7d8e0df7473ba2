"""End to end, the way a user trains: preprocess → train each model → resume → clone with the result.

Everything runs through the real command lines in subprocesses, on real speech (espeak-ng voices, and
LJSpeech-mini from ``../shared/datasets`` when present), with tiny hyperparameters so the whole chain
takes about a minute on two cores. The trained encoder's 16-d embeddings feed the synthesizer, so the
stages must really fit together.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from tests.conftest import DATASETS_DIR
from synthesizer.metadata import read_train_txt

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
QUIET = ["--quiet", "--no_tensorboard", "--num_workers", "0", "--seed", "0"]

TINY_ENCODER = ["hidden_size=32", "embedding_size=16", "num_layers=1", "speakers_per_batch=3",
                "utterances_per_speaker=2"]
TINY_SYNTHESIZER = ["tts_embed_dims=32", "tts_encoder_dims=32", "tts_decoder_dims=32", "tts_postnet_dims=32",
                    "tts_lstm_dims=64", "tts_encoder_K=2", "tts_postnet_K=2", "tts_num_highways=1",
                    "max_decoder_steps=60", "tts_schedule=[[5,0.001,1000,2]]"]
TINY_VOCODER = ["voc_rnn_dims=32", "voc_fc_dims=32", "voc_compute_dims=16", "voc_res_out_dims=16",
                "voc_res_blocks=1", "voc_batch_size=2", "voc_seq_len=400"]

SENTENCES = (
    "The quick brown fox jumps over the lazy dog today.",
    "Please call Stella and ask her to bring these things.",
    "A rainbow is a division of white light into many beautiful colors.",
)
VOICES = (("en-us", 40), ("en-gb", 60), ("en-us+f3", 50), ("en-gb-scotland", 30))


def run(module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{module} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def saved_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


@pytest.fixture(scope="module")
def espeak_corpus(tmp_path_factory, espeak) -> Path:
    """``<root>/voices/<speaker>/<n>.wav + <n>.txt``: 4 synthetic speakers × 3 sentences."""
    root = tmp_path_factory.mktemp("datasets")
    for voice, pitch in VOICES:
        speaker = root / "voices" / voice.replace("+", "_")
        for index, sentence in enumerate(SENTENCES):
            espeak(speaker / f"{index}.wav", sentence, voice=voice, pitch=pitch)
            (speaker / f"{index}.txt").write_text(sentence + "\n")
    return root


@pytest.mark.timeout(900)
def test_preprocess_train_resume_and_clone_with_the_trained_models(espeak_corpus, tmp_path):
    root, models = espeak_corpus, tmp_path / "models"

    # 1. Speaker encoder.
    run("encoder.preprocess", str(root), "-d", "voices", "-n", "1")
    speakers = sorted(p.name for p in (root / "SV2TTS" / "encoder").iterdir() if p.is_dir())
    assert len(speakers) == 4
    run("encoder.train", "enc", str(root / "SV2TTS" / "encoder"), "-m", str(models), "--max_steps", "3",
        "--umap_every", "0", *QUIET, "--hparams", *TINY_ENCODER)
    encoder_file = models / "enc" / "encoder.pt"
    assert saved_step(encoder_file) == 3

    # 2. Synthesizer, with embeddings from the encoder just trained.
    run("synthesizer.preprocess", str(root), "-d", "voices", "-n", "1", "-e", str(encoder_file))
    syn_dir = root / "SV2TTS" / "synthesizer"
    entries = read_train_txt(syn_dir / "train.txt")
    assert len(entries) == 12
    embedding = np.load(syn_dir / "embeds" / entries[0].embed_name)
    assert embedding.shape == (16,) and abs(np.linalg.norm(embedding) - 1) < 1e-4

    synthesizer_args = ["syn", str(syn_dir), "-m", str(models), *QUIET, "--sample_every", "0",
                        "--hparams", *TINY_SYNTHESIZER, "speaker_embedding_size=16"]
    run("synthesizer.train", *synthesizer_args[:2], "--max_steps", "2", *synthesizer_args[2:])
    synthesizer_file = models / "syn" / "synthesizer.pt"
    assert saved_step(synthesizer_file) == 2
    resumed = run("synthesizer.train", *synthesizer_args[:2], "--max_steps", "4", *synthesizer_args[2:])
    assert "Resuming synthesizer at step 2." in resumed.stdout
    assert saved_step(synthesizer_file) == 4

    # 3. Vocoder on ground-truth-aligned mels of that synthesizer.
    run("vocoder.preprocess", str(root), "-s", str(synthesizer_file), "--cpu", "--quiet")
    gta = sorted((root / "SV2TTS" / "vocoder" / "mels_gta").glob("*.npy"))
    assert len(gta) == 12
    first = entries[0]
    assert np.load(root / "SV2TTS" / "vocoder" / "mels_gta" / first.mel_name).shape == (first.n_frames, 80)
    run("vocoder.train", "voc", str(root), "-m", str(models), "--max_steps", "3", "--sample_every", "0",
        *QUIET, "--hparams", *TINY_VOCODER)
    vocoder_file = models / "voc" / "vocoder.pt"
    assert saved_step(vocoder_file) == 3

    # 4. The trained files clone a voice through the user's command line.
    reference = root / "voices" / "en-gb" / "0.wav"
    out = tmp_path / "clone.wav"
    run("demo_cli", "-r", str(reference), "-t", "Hello there.", "-o", str(out), "--seed", "1", "--quiet",
        "-e", str(encoder_file), "-s", str(synthesizer_file), "-v", str(vocoder_file))
    wav, rate = soundfile.read(out)
    assert rate == 16000 and len(wav) > 0 and np.isfinite(wav).all()


@pytest.mark.timeout(600)
def test_synthesizer_and_vocoder_train_on_real_ljspeech(tmp_path, encoder_checkpoint):
    ljspeech = DATASETS_DIR / "LJSpeech-mini"
    if not (ljspeech / "metadata.csv").exists():
        pytest.skip(f"{ljspeech} is absent (the shared real-speech datasets are not available)")
    root = tmp_path / "datasets"
    root.mkdir()
    (root / "LJSpeech-mini").symlink_to(ljspeech)
    models = tmp_path / "models"

    run("synthesizer.preprocess", str(root), "-d", "LJSpeech-mini", "-n", "2", "-e", str(encoder_checkpoint))
    syn_dir = root / "SV2TTS" / "synthesizer"
    entries = read_train_txt(syn_dir / "train.txt")
    assert len(entries) >= 25  # a few of the 32 clips may exceed the frame limit
    assert all(0 < e.n_frames <= 900 and e.text == e.text.strip() for e in entries)

    run("synthesizer.train", "lj", str(syn_dir), "-m", str(models), "--max_steps", "2", *QUIET,
        "--sample_every", "0", "--hparams", *TINY_SYNTHESIZER)
    run("vocoder.preprocess", str(root), "-s", str(models / "lj" / "synthesizer.pt"), "--cpu", "--quiet")
    run("vocoder.train", "lj", str(root), "-m", str(models), "--max_steps", "2", "--sample_every", "0",
        *QUIET, "--hparams", *TINY_VOCODER)
    assert saved_step(models / "lj" / "vocoder.pt") == 2
