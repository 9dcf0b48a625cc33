#!/usr/bin/env bash
# Trains, scores and packs the shipped five-style model (stylenet/pretrained/paintings.pt).
#
#   bash scripts/train_paintings.sh PHOTOS OUT [--gpu]
#
# It regenerates the shipped files: its last step replaces stylenet/pretrained/paintings.pt and
# docs/models.md (pack_pretrained.py --overwrite); commit them to ship the new model, or check them
# out again to keep the old one.
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
usage="usage: bash scripts/train_paintings.sh PHOTOS OUT [--gpu] (trains for hours, then replaces \
stylenet/pretrained/paintings.pt and docs/models.md)"
if [[ $# -lt 2 || $# -gt 3 ]]; then echo "$usage" >&2; exit 2; fi
photos=$1 out=$2 device=${3:-}
if [[ -n $device && $device != --gpu ]]; then echo "error: third argument: only --gpu (got $device)" >&2; exit 2; fi
if [[ ! -d $photos ]]; then
  what=$([[ -e $photos ]] && echo "is not a folder" || echo "does not exist")
  echo "error: PHOTOS $photos $what: give the folder of photos to train on" >&2; exit 2
fi
if [[ -e $out && ! -d $out ]]; then echo "error: OUT $out is a file: give a folder for the runs" >&2; exit 2; fi
held_out="astronaut building chelsea coffee motorcycle_left sunrise"
# Absolute paths from here: the steps below run from the repository's root, wherever this was started.
given=$photos photos=$(realpath "$photos") out=$(realpath -m "$out")
# The photos at the top of PHOTOS, by the suffixes training reads (stylenet/imageio.py's IMAGE_SUFFIXES).
shopt -s nullglob nocaseglob
images=("$photos"/*.{jpg,jpeg,png,bmp,gif,tif,tiff,webp,ppm,pgm})
shopt -u nullglob nocaseglob
training=0
for photo in "${images[@]}"; do
  name=$(basename "${photo%.*}")
  [[ " $held_out " == *" $name "* ]] || training=$((training + 1))
done
if (( training == 0 )); then
  echo "error: PHOTOS $given holds no photo to train on (.jpg, .png ...; the held-out $held_out do not count)" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
mkdir -p "$out/train" "$out/held_out"
for photo in "${images[@]}"; do
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
  --report "$out/evaluation/report.json" -o stylenet/pretrained/paintings.pt --markdown docs/models.md --overwrite
