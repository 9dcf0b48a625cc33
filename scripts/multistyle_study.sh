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
# Graffiti added (its report) against every periodic checkpoint of a from-scratch run (OUT/<run>).
against_scratch() {
  local reports=() ckpt name
  for ckpt in "$out/$2"/checkpoints/step_*.ckpt; do
    name=$(basename "$ckpt" .ckpt)
    evaluate "$ckpt" "$out/eval/$2_$name"
    reports+=("$out/eval/$2_$name/report.json")
  done
  python scripts/multistyle_table.py added graffiti "$1" "${reports[@]}"
}

# Per-style quality. The five-style network at style_row_lr_scale=1 and 5 (the default), 2000
# steps, batch 4; the scale-5 run resumed to 4000 and 6000, and single-style starry and wave
# networks trained to the same steps. (At scale 1 a resume to 4000 diverged, see docs/multistyle.md.)
multi="style=[starry,wave,scream,composition_vii,udnie]"
train "$multi" style_row_lr_scale=1 "paths.output_dir=$out/multi5_scale1" "paths.kept_models_dir=$out/models_scale1"
train "$multi" "paths.output_dir=$out/multi5_2000" "paths.kept_models_dir=$out/models2000"
train style=starry "paths.output_dir=$out/starry_2000" "paths.kept_models_dir=$out/models2000"
train style=wave "paths.output_dir=$out/wave_2000" "paths.kept_models_dir=$out/models2000"
for steps in 4000 6000; do
  previous=$((steps - 2000))
  for run in "multi5:$multi" starry:style=starry wave:style=wave; do
    name=${run%%:*}
    train "${run#*:}" trainer.max_steps=$steps "ckpt_path=$out/${name}_$previous/checkpoints/last.ckpt" \
      "paths.output_dir=$out/${name}_$steps" "paths.kept_models_dir=$out/models$steps"
  done
done
evaluate "$out/models_scale1/$five.pt" "$out/eval/multi5_scale1_2000"
for steps in 2000 4000 6000; do
  for model in "$five" starry wave; do
    evaluate "$out/models$steps/$model.pt" "$out/eval/${model}_$steps"
  done
  python scripts/multistyle_table.py quality "$out/eval/${five}_$steps/report.json" \
    "starry=$out/eval/starry_$steps/report.json" "wave=$out/eval/wave_$steps/report.json"
done

# Weight averaging: the three S = 6000 runs resumed to 10000 steps keeping a moving average of their
# weights (weight_average_decay=0.998), every periodic checkpoint (1000 steps apart) kept and evaluated.
for run in "multi5:$multi" starry:style=starry wave:style=wave; do
  name=${run%%:*}
  train "${run#*:}" trainer.max_steps=10000 weight_average_decay=0.998 checkpoint_every_n_steps=1000 checkpoint_keep=-1 \
    "ckpt_path=$out/${name}_6000/checkpoints/last.ckpt" "paths.output_dir=$out/${name}_averaged" \
    "paths.kept_models_dir=$out/models_averaged"
done
for steps in 007000 008000 009000 010000; do  # each checkpoint's average, and its weights as trained
  for name in multi5 starry wave; do
    checkpoint="$out/${name}_averaged/checkpoints/step_$steps.ckpt"
    evaluate "$checkpoint" "$out/eval/${name}_averaged_$steps"
    python scripts/trained_weights.py "$checkpoint" "$out/${name}_trained_$steps.ckpt"
    evaluate "$out/${name}_trained_$steps.ckpt" "$out/eval/${name}_trained_$steps"
  done
  for kind in averaged trained; do
    python scripts/multistyle_table.py quality "$out/eval/multi5_${kind}_$steps/report.json" \
      "starry=$out/eval/starry_${kind}_$steps/report.json" "wave=$out/eval/wave_${kind}_$steps/report.json"
  done
done

# A new style: 1667 steps of norms only (10 minutes of this recipe's full step, 0.36 s alone on
# the machine of the docs) added to the five-style network at 4000 steps, at optimizer.lr=0.01,
# against a from-scratch run of graffiti (10000 steps would be 60 minutes), checkpointed every 500 steps.
train style=custom style.image=graffiti.png style.name=graffiti "init=$out/models4000/$five.pt" trainer.max_steps=1667 \
  optimizer.lr=0.01 "paths.output_dir=$out/graffiti_added" "paths.kept_models_dir=$out/models_added"
train style=custom style.image=graffiti.png style.name=graffiti trainer.max_steps=10000 checkpoint_every_n_steps=500 \
  "paths.output_dir=$out/graffiti_scratch" "paths.kept_models_dir=$out/models_scratch"
evaluate "$out/models_added/$five+graffiti.pt" "$out/eval/graffiti_added" --style graffiti
# The same added to the averaged network of S = 10000 (the weight-averaging block above).
train style=custom style.image=graffiti.png style.name=graffiti "init=$out/models_averaged/$five.pt" trainer.max_steps=1667 \
  optimizer.lr=0.01 "paths.output_dir=$out/graffiti_added_averaged" "paths.kept_models_dir=$out/models_added_averaged"
evaluate "$out/models_added_averaged/$five+graffiti.pt" "$out/eval/graffiti_added_averaged" --style graffiti
against_scratch "$out/eval/graffiti_added/report.json" graffiti_scratch

# The shipped five-style model (`init=paintings`) as the base, with its own recipe (experiment=paintings:
# 256 px, batch 4, content at relu2_2). Step times alone on the machine (2 threads, 90 steps,
# checkpoints 30 apart): 1.30 s adding, 1.40 s from scratch, so 430 adding steps are 9.3 minutes
# and 2400 from-scratch steps 56 minutes.
shipped() { python train.py experiment=paintings styles=null style=custom style.image=graffiti.png style.name=graffiti \
  "data.root=$photos" trainer.enable_progress_bar=false "$@"; }
shipped init=paintings optimizer.lr=0.01 trainer.max_steps=430 \
  "paths.output_dir=$out/graffiti_added_shipped" "paths.kept_models_dir=$out/models_added_shipped"
shipped trainer.max_steps=2400 checkpoint_every_n_steps=300 checkpoint_keep=-1 trainer.val_check_interval=300 \
  "paths.output_dir=$out/graffiti_scratch_shipped" "paths.kept_models_dir=$out/models_scratch_shipped"
evaluate "$out/models_added_shipped/$five+graffiti.pt" "$out/eval/graffiti_added_shipped" --style graffiti
against_scratch "$out/eval/graffiti_added_shipped/report.json" graffiti_scratch_shipped

# The same, with every weight training (init_trains=all: the shared weights at a hundredth of the row's
# rate, the five styles held by the keep term), against a from-scratch run six times as long in minutes.
# Step times alone on the machine (2 threads, 100 steps; 2 cores of an Intel Xeon with AMX-BF16):
# 0.953 s adding this way, 0.831 s from scratch, so 630 adding steps are 10 minutes and 4,332
# from-scratch steps 60 minutes. The five styles before and after: the `kept` table.
shipped init=paintings init_trains=all optimizer.lr=0.02 lr_schedule=cosine trainer.max_steps=630 \
  "paths.output_dir=$out/graffiti_added_all" "paths.kept_models_dir=$out/models_added_all"
shipped trainer.max_steps=4332 checkpoint_every_n_steps=722 checkpoint_keep=-1 trainer.val_check_interval=722 \
  "paths.output_dir=$out/graffiti_scratch_60" "paths.kept_models_dir=$out/models_scratch_60"
# At a constant rate that run may stop on the divergence guard before its 60 minutes; lowered along a
# half cosine it runs them all, and its last checkpoint is the 60-minute model.
shipped lr_schedule=cosine trainer.max_steps=4332 checkpoint_every_n_steps=722 checkpoint_keep=-1 \
  trainer.val_check_interval=722 "paths.output_dir=$out/graffiti_scratch_60_cosine" \
  "paths.kept_models_dir=$out/models_scratch_60_cosine"
evaluate "$out/models_added_all/$five+graffiti.pt" "$out/eval/graffiti_added_all"
evaluate paintings "$out/eval/paintings"
against_scratch "$out/eval/graffiti_added_all/report.json" graffiti_scratch_60
against_scratch "$out/eval/graffiti_added_all/report.json" graffiti_scratch_60_cosine
python scripts/multistyle_table.py kept "$out/eval/paintings/report.json" "$out/eval/graffiti_added_all/report.json"

# Blends, and speed (run this last, alone on the machine).
python -m stylenet.blend_path "$out/models4000/$five.pt" --photos "$held_out" --pair starry,wave --grid "$out/blend.png"
python -m stylenet.blend_path "$out/models4000/$five.pt" --photos "$held_out" --pair scream,composition_vii
env -u OMP_NUM_THREADS stylenet benchmark --model "$out/models4000/$five.pt" --styles 5 --sizes 512,1920x1080 --backends fast-bf16 --memory-reuse off --no-train \
  --markdown "$out/speed.md"
