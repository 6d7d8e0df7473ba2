#!/usr/bin/env bash
# How the offline default models in saved_models/shipped/ are made (see saved_models/README.md).
#
#   bash tools/train_shipped_models.sh [WORK_DIR]      # default WORK_DIR: ../train_runs
#
# Every step resumes: rerun the script after an interruption and it carries on (preprocessing skips
# what exists, the trainers resume from WORK_DIR/models/<run>/ or, on a new machine, start from the
# shipped weights with --init_from). Training runs until stopped (Ctrl-C or SIGTERM saves); the last
# lines export whatever was reached. Needs ../shared/datasets (LibriSpeech, speechocean762,
# english-misc, LJSpeech-mini). The shipped models were trained on 2 CPU cores, one thread per
# trainer, the two trainers side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-../train_runs}
SHARED=$(realpath ../shared/datasets)
mkdir -p "$WORK/datasets/LibriSpeech/train-clean-100"

# 1. Real speech only: LibriSpeech minus the 20 held-out speakers of benchmarks/bench_quality.py,
#    speechocean762, english-misc and LJSpeech-mini, linked (never copied).
HELD_OUT=$(cd benchmarks && python -c "import bench_quality as b; print(' '.join(b.HELD_OUT_SPEAKERS))")
for speaker in "$SHARED"/LibriSpeech/train-clean-100/*; do
    id=$(basename "$speaker")
    [[ " $HELD_OUT " == *" $id "* ]] || ln -sfn "$speaker" "$WORK/datasets/LibriSpeech/train-clean-100/$id"
done
# Issue 23's native speech: complete LibriSpeech test-clean, Mini LibriSpeech (already without the
# held-out speakers of ../heldout) and VCTK p239.
ln -sfn "$SHARED/LibriSpeech/test-clean" "$WORK/datasets/LibriSpeech/test-clean"
ln -sfn "$SHARED/LibriSpeech/train-clean-5" "$WORK/datasets/LibriSpeech/train-clean-5"
ln -sfn "$SHARED/english-native" "$WORK/datasets/english-native"
ln -sfn "$SHARED/LJSpeech-mini" "$WORK/datasets/LJSpeech-1.1"
ln -sfn "$SHARED/speechocean762" "$WORK/datasets/speechocean762"
ln -sfn "$SHARED/english-misc" "$WORK/datasets/english-misc"

# 2. Mels, audio and GE2E embeddings (resemblyzer's encoder); whole utterances up to 25 s, since the
#    duration synthesizer aligns itself and needs no split at pauses.
python -m synthesizer.preprocess "$WORK/datasets" -o "$WORK/SV2TTS/synthesizer" -s -n 2 --hparams max_mel_frames=2000
python -m synthesizer.duration.pitch "$WORK/SV2TTS/synthesizer" -n 2

# 3. Both models side by side, one thread each. The native-English sources are listed 4 times, so
#    that the 4,800 short non-native speechocean762 sentences do not dominate. The vocoder learns
#    copy-synthesis first (run istft_voc, to step 9,753), then is fine-tuned with the speaker-consistency
#    loss through resemblyzer's GE2E encoder (run istft_scl, to step 12,478), then goes on with half of
#    its batches on the shipped synthesizer's GTA mels (run istft_scl_gta); on a new machine it resumes
#    from the shipped file, which is already that fine-tuned vocoder.
init() { [ -f "$WORK/models/$1/$2.pt" ] || [ ! -f "saved_models/shipped/$2.pt" ] || echo "--init_from saved_models/shipped/$2.pt"; }
OMP_NUM_THREADS=1 python -m synthesizer.duration.train dur1 "$WORK/SV2TTS/synthesizer" -m "$WORK/models" \
    --oversample 'english-misc=4' 'mel-[0-9]+-=4' 'mel-LJ=4' -s 250 --sample_every 500 --log_every 25 --quiet \
    --seed 1 $(init dur1 synthesizer) &
(
    scl_init=$(init istft_scl vocoder)
    if [ ! -f "$WORK/models/istft_scl/vocoder.pt" ] && [ -z "$scl_init" ]; then
        OMP_NUM_THREADS=1 python -m vocoder.istft.train istft_voc "$WORK/SV2TTS/synthesizer" -m "$WORK/models" \
            --save_every 200 --backup_every 1000 --sample_every 1000 --log_every 20 --num_workers 1 --seed 2 \
            --quiet --hparams decay_steps=10000 --max_steps 9753
        scl_init="--init_from $WORK/models/istft_voc/vocoder.pt"
    fi
    scl=(--save_every 200 --backup_every 500 --sample_every 1000 --log_every 20 --num_workers 1 --quiet)
    gta_init=$(init istft_scl_gta vocoder)
    if [ ! -f "$WORK/models/istft_scl_gta/vocoder.pt" ] && [ -z "$gta_init" ]; then
        OMP_NUM_THREADS=1 python -m vocoder.istft.train istft_scl "$WORK/SV2TTS/synthesizer" -m "$WORK/models" \
            "${scl[@]}" --seed 3 --hparams w_speaker=200 learning_rate=4e-4 decay_steps=16000 --max_steps 12478 \
            $scl_init
        gta_init="--init_from $WORK/models/istft_scl/vocoder.pt"
    fi
    [ -d "$WORK/SV2TTS/vocoder_gta" ] || python -m vocoder.preprocess "$WORK" -s saved_models/shipped/synthesizer.pt \
        -o "$WORK/SV2TTS/vocoder_gta" -n 0
    OMP_NUM_THREADS=1 python -m vocoder.istft.train istft_scl_gta "$WORK/SV2TTS/synthesizer" -m "$WORK/models" \
        "${scl[@]}" --seed 4 --gta_dir "$WORK/SV2TTS/vocoder_gta" \
        --hparams w_speaker=200 learning_rate=4e-4 decay_steps=16000 gta_batch_fraction=0.5 $gta_init
) &
wait

# 3b. The synthesizer with pitch, energy and the flow-matching post-net (issue 23, run flow1), grown from
#     the step-9,989 regression model (run dur1) on the 12-hour set; shipped at step 11,750, then 12,500,
#     each once it beat the shipped file on two benchmark seeds (saved_models/README.md).
#     Speaker variety is weighed up: the one-utterance speakers of train-clean-100 (their exact file names;
#     Mini LibriSpeech shares their speaker numbers) and english-misc are listed 4 times. Steps 9,989-10,444
#     ran with seed 5, oversampling english-misc and LJ 3 times only and no weight average. On a new
#     machine it resumes from the shipped file (its weight average).
TC100=$(find -L "$WORK/datasets/LibriSpeech/train-clean-100" -name '*.flac' -printf '%f\n' | sed 's/\.flac$//' | sort | paste -sd'|')
OMP_NUM_THREADS=1 python -m synthesizer.duration.train flow1 "$WORK/SV2TTS/synthesizer" -m "$WORK/models" \
    --oversample "mel-($TC100)\.npy=4" 'english-misc=4' 'mel-LJ=3' -s 250 --sample_every 1000 --log_every 25 \
    --quiet --seed 6 $(init flow1 synthesizer) --hparams variance_adaptor=true flow_layers=6 ema_decay=0.998 \
    flow_temperature=0.3

# 4. Ship: weights, hyperparameters, step and symbols only, float16; then measure.
python -m utils.export_model "$WORK/models/istft_scl_gta/vocoder.pt" saved_models/shipped/vocoder.pt --float16
# The synthesizer: flow1's weight average (its flow temperature, 0.3, is one of its stored hparams).
python -m utils.export_model "$WORK/models/flow1/synthesizer.pt" saved_models/shipped/synthesizer.pt --float16 --ema
# The SHA-256 beside each file, checked whenever it is loaded (a changed or damaged file is refused).
(cd saved_models/shipped && for f in synthesizer.pt vocoder.pt; do sha256sum "$f" > "$f.sha256"; done)
python benchmarks/bench_quality.py --vocoders istft,griffinlim --sentences_per_speaker 1
