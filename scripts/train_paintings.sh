#!/usr/bin/env bash
# Trains, scores and packs the shipped five-style model (stylenet/pretrained/paintings.pt).
#
#   bash scripts/train_paintings.sh PHOTOS OUT [--gpu]
#
# PHOTOS: a folder of photos; the six named below are held out (never trained on) and the rest
# train. OUT: a folder for the runs, the evaluation report and the packed model. STYLENET_STYLE_DIR
# must hold the five paintings of configs/style/ (its starry_night.jpg is used, not the package's).
# On a CPU, stage 1 is the compare_cpu recipe (128 px, content at relu4_2) to 6,000 steps and stage 2
# resumes it at 256 px with the content at relu2_2 (configs/experiment/paintings.yaml) to 7,000.
# With --gpu (how the shipped model was trained) one stage replaces both: 256 px at batch 16 to
# 5,800 steps (configs/experiment/paintings_gpu.yaml). Stage 3 fine-tunes that model with the temporal term
# (configs/experiment/paintings_stable.yaml), and a control fine-tunes it as long without the term:
# the video stability report compares the two on the clips scripts/fetch_clips.sh fetches. A stopped
# stage resumes by rerunning its line with ckpt_path=OUT/<stage>/checkpoints/last.ckpt (stage 3 and its
# control with it in place of their finetune=, which starts a new run).
set -euo pipefail
photos=$1 out=$2 device=${3:-}
if [[ -n $device && $device != --gpu ]]; then echo "error: third argument: only --gpu (got $device)" >&2; exit 2; fi
held_out="astronaut building chelsea coffee motorcycle_left sunrise"
mkdir -p "$out/train" "$out/held_out"
for photo in "$photos"/*; do
  name=$(basename "${photo%.*}")
  if [[ " $held_out " == *" $name "* ]]; then dest=held_out; else dest=train; fi
  ln -sf "$(realpath "$photo")" "$out/$dest/"
done
five="starry+wave+scream+composition_vii+udnie"
if [[ $device == --gpu ]]; then
  python train.py experiment=paintings_gpu "data.root=$out/train" \
    "paths.output_dir=$out/stage2" "paths.kept_models_dir=$out/stage2_model"
else
  python train.py experiment=compare_cpu "data.root=$out/train" "style=[starry,wave,scream,composition_vii,udnie]" \
    trainer.max_steps=6000 "paths.output_dir=$out/stage1" "paths.kept_models_dir=$out/stage1_model"
  python train.py experiment=paintings "data.root=$out/train" "ckpt_path=$out/stage1/checkpoints/last.ckpt" \
    "paths.output_dir=$out/stage2" "paths.kept_models_dir=$out/stage2_model"
fi
python train.py experiment=paintings_stable "data.root=$out/train" "finetune=$out/stage2_model/$five.pt" \
  "paths.output_dir=$out/stage3" "paths.kept_models_dir=$out/stage3_model"
python train.py experiment=paintings_stable "data.root=$out/train" "finetune=$out/stage2_model/$five.pt" \
  loss.temporal_weight=0 "paths.output_dir=$out/stage3_control" "paths.kept_models_dir=$out/stage3_control_model"
# Scored on the two held-out photos scikit-image ships (anyone can rerun this on the same photos).
python scripts/demo_photos.py "$out/evaluation_photos" --held-out
stylenet evaluate "$out/stage3_model/$five.pt" --photos "$out/evaluation_photos" -o "$out/evaluation"
bash scripts/fetch_clips.sh "$out/clips"
stylenet evaluate "$out/stage3_model/$five.pt" --video "$out/clips/vtest.avi" "$out/clips/tree.avi" --frames 30 --video-size 384 \
  --baseline "$out/stage3_control_model/$five.pt" -o "$out/evaluation_video"
python scripts/pack_pretrained.py "$out/stage3_model/$five.pt" --card stylenet/pretrained/paintings.card.yaml \
  --report "$out/evaluation/report.json" -o stylenet/pretrained/paintings.pt --markdown docs/models.md
