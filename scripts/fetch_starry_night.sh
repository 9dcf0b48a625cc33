#!/usr/bin/env bash
# Rebuilds stylenet/assets/starry_night.jpg, the one style image the package ships:
# The Starry Night (Van Gogh, 1889, public domain) as Debian's opencv-doc package carries it,
# with its dark and pale frame cropped away. Needs apt (Debian/Ubuntu) and the project's venv.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download opencv-doc
member=./usr/share/doc/opencv-doc/examples/data/starry_night.jpg
dpkg-deb --fsys-tarfile opencv-doc_*.deb | tar -x "$member"
echo "000a4e8c2fb200b80fa7a045065c85cb  $member" | md5sum -c -
python - "$member" "$repo/stylenet/assets/starry_night.jpg" <<'PY'
import sys
from PIL import Image
# 752x600 source: ~9 px of black then a ~5 px pale frame on every side; 16 px clears both.
border = 16
image = Image.open(sys.argv[1]).convert("RGB")
w, h = image.size
image.crop((border, border, w - border, h - border)).save(sys.argv[2], quality=95)
PY
echo "wrote $repo/stylenet/assets/starry_night.jpg"
