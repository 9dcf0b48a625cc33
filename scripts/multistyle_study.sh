#!/usr/bin/env bash
# The measurements of docs/multistyle.md: one network of five styles against single-style
# networks, a style added to it (init=) against one trained from scratch, blends, and speed.
#
#   bash scripts/multistyle_study.sh PHOTOS HELD_OUT OUT
#
# PHOTOS: the training photos; HELD_OUT: photos the models never train on; OUT: a folder for
# the runs, models and reports. STYLENET_STYLE_DIR must hold the five paintings of
# configs/style/ and graffiti.png (graf1.png of OpenCV's sample data, Debian's opencv-doc).
# Every run is one thread (OMP_NUM_THREADS=1), so that several share the cores side by side;
# budgets are counted in steps. Resume a stopped run by rerunning its line with
# ckpt_path=OUT/<run>/checkpoints/last.ckpt.
set -euo pipefail
photos=$1 held_out=$2 out=$3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
five="starry+wave+scream+composition_vii+udnie"
train() { python train.py experiment=compare_cpu "data.root=$photos" trainer.enable_progress_bar=false "$@"; }
evaluate() { stylenet evaluate "$1" --photos "$held_out" --gatys-steps 0 -o "$2" "${@:3}"; }

# Per-style quality at S = 2000 steps, batch 4; then both resumed to 4000 (the five-style run
# diverged there, see docs/multistyle.md).
train "style=[starry,wave,scream,composition_vii,udnie]" "paths.output_dir=$out/multi5" "paths.kept_models_dir=$out/models"
train style=starry "paths.output_dir=$out/single_starry" "paths.kept_models_dir=$out/models"
train style=wave "paths.output_dir=$out/single_wave" "paths.kept_models_dir=$out/models"
train "style=[starry,wave,scream,composition_vii,udnie]" trainer.max_steps=4000 \
  "ckpt_path=$out/multi5/checkpoints/last.ckpt" "paths.output_dir=$out/multi5_4000" "paths.kept_models_dir=$out/models4000"
train style=starry trainer.max_steps=4000 \
  "ckpt_path=$out/single_starry/checkpoints/last.ckpt" "paths.output_dir=$out/single_starry_4000" "paths.kept_models_dir=$out/models4000"
evaluate "$out/models/$five.pt" "$out/eval/multi5_2000"
evaluate "$out/models/starry.pt" "$out/eval/starry_2000"
evaluate "$out/models/wave.pt" "$out/eval/wave_2000"
evaluate "$out/models4000/$five.pt" "$out/eval/multi5_4000"
python scripts/multistyle_table.py quality "$out/eval/multi5_2000/report.json" \
  "starry=$out/eval/starry_2000/report.json" "wave=$out/eval/wave_2000/report.json"

# A new style: 1667 steps of norms only (10 minutes of this recipe's full step, 0.36 s alone on
# the machine of the docs), at the default learning rate and at 1e-2, against a from-scratch run
# of 10000 steps (60 minutes), checkpointed every 500 steps.
add="style=custom style.image=graffiti.png style.name=graffiti init=$out/models/$five.pt trainer.max_steps=1667"
train $add "paths.output_dir=$out/graffiti_added" "paths.kept_models_dir=$out/models_added"
train $add optimizer.lr=0.01 "paths.output_dir=$out/graffiti_added_lr" "paths.kept_models_dir=$out/models_added_lr"
train style=custom style.image=graffiti.png style.name=graffiti trainer.max_steps=10000 checkpoint_every_n_steps=500 \
  "paths.output_dir=$out/graffiti_scratch" "paths.kept_models_dir=$out/models_scratch"
evaluate "$out/models_added/$five+graffiti.pt" "$out/eval/graffiti_added" --style graffiti
evaluate "$out/models_added_lr/$five+graffiti.pt" "$out/eval/graffiti_added_lr" --style graffiti
scratch_reports=()
for ckpt in "$out"/graffiti_scratch/checkpoints/step_*.ckpt; do
  name=$(basename "$ckpt" .ckpt)
  evaluate "$ckpt" "$out/eval/graffiti_scratch_$name"
  scratch_reports+=("$out/eval/graffiti_scratch_$name/report.json")
done
python scripts/multistyle_table.py added graffiti "$out/eval/graffiti_added/report.json" "${scratch_reports[@]}"
python scripts/multistyle_table.py added graffiti "$out/eval/graffiti_added_lr/report.json" "${scratch_reports[@]}"

# Blends, and speed (run this last, alone on the machine).
python -m stylenet.blend_path "$out/models/$five.pt" --photos "$held_out" --pair starry,wave --grid "$out/blend.png"
python -m stylenet.blend_path "$out/models/$five.pt" --photos "$held_out" --pair scream,composition_vii
env -u OMP_NUM_THREADS stylenet benchmark --model "$out/models/$five.pt" --styles 5 --sizes 512,1920x1080 --backends fast-bf16 --memory-reuse off --no-train \
  --markdown "$out/speed.md"
