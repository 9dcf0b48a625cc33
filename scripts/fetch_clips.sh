#!/usr/bin/env bash
# The two clips the video stability numbers are measured on, from Debian's opencv-doc package:
# vtest.avi (a fixed camera, people walking) and tree.avi (a tree in the wind).
#   bash scripts/fetch_clips.sh OUT_DIR
# Needs apt (Debian/Ubuntu). The clips stay outside the repository (about 9 MB).
set -euo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download opencv-doc
for clip in vtest.avi tree.avi; do
  dpkg-deb --fsys-tarfile opencv-doc_*.deb | tar -x "./usr/share/doc/opencv-doc/examples/data/$clip"
  cp "./usr/share/doc/opencv-doc/examples/data/$clip" "$out/"
done
echo "wrote $out/vtest.avi and $out/tree.avi"
