#!/usr/bin/env bash
# One-time setup on Debian/Ubuntu: Python packages, offline Fashion-MNIST, and (if present) the
# CIFAR-10 JPEG copy. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
    || echo "setup: could not install dataset-fashion-mnist; train.py will try ./data or a download" >&2
fi
python -m pip install -q -r requirements.txt
# the CIFAR-10 JPEG copy (profile=quick/standard): prepare_cifar10_jpeg.sh owns where the tarball is
rc=0; bash scripts/prepare_cifar10_jpeg.sh || rc=$?
if [ "$rc" -eq 2 ]; then
  echo "setup: no CIFAR-10 JPEG tarball (set CIFAR10_JPEG_TARBALL); profile=quick/standard need it" >&2
elif [ "$rc" -ne 0 ]; then
  exit "$rc"
fi
echo "setup: done"
