#!/usr/bin/env bash
# Exports the quickstart model and runs it on an image, a folder and a video, then times it:
# the numbers in the README's "Using a trained model" section come from this script.
#   bash scripts/quickstart_inference.sh [MODEL] [PHOTO_FOLDER]
set -euo pipefail
model=${1:-checkpoints/starry.pt}
photos=${2:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$photos" ]; then  # scikit-image's CC0 photos, so the script needs nothing else
  photos="$work/photos"
  python "$(dirname "$0")/demo_photos.py" "$photos"
fi
first=$(find "$photos" -type f \( -name '*.jpg' -o -name '*.png' \) | sort | head -n 1)
grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /cpu: /'
echo "cores: $(nproc); flags: $(grep -o -w -E 'avx512f|avx512_bf16|amx_bf16|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')"

echo "== stylenet export $model --format all"
stylenet export "$model" --format all -o "$work/models"
stem=$(basename "${model%.*}")
echo "== stylenet stylize (one image: the defaults, bf16 where native, uncompiled)"
stylenet stylize "$model" "$first" -o "$work/one.jpg"
echo "== stylenet stylize (folder, ONNX Runtime, --size 512)"
stylenet stylize "$work/models/$stem.onnx" "$photos" -o "$work/folder" --size 512
echo "== stylenet stylize (video, 640x360, 96 frames: the defaults, compiled for video)"
python "$(dirname "$0")/make_demo_video.py" "$work/clip.mp4" --seconds 4 --fps 24
stylenet stylize "$model" "$work/clip.mp4" -o "$work/clip_stylized.mp4"
echo "== stylenet stylize (the same video through torch.export)"
stylenet stylize "$work/models/$stem.pt2" "$work/clip.mp4" -o "$work/clip_pt2.mp4"
echo "== stylenet stylize --benchmark"
for size in 256 512; do
  stylenet stylize "$model" --benchmark --size "$size" --batch-size 1 --precision fp32 --compile off
  stylenet stylize "$model" --benchmark --size "$size" --batch-size 1 --compile off
  stylenet stylize "$model" --benchmark --size "$size" --batch-size 1
  stylenet stylize "$work/models/$stem.onnx" --benchmark --size "$size" --batch-size 1
  stylenet stylize "$work/models/$stem.pt2" --benchmark --size "$size" --batch-size 1
done
