#!/usr/bin/env bash
# Extract the offline CIFAR-10 JPEG copy into the git-ignored data/cifar10-jpeg, giving
# data/cifar10-jpeg/{train,test}/<class>/*.jpg for engine.data.image_folder.
#
# Usage: scripts/prepare_cifar10_jpeg.sh [TARBALL] [DEST]
#   TARBALL  default: $CIFAR10_JPEG_TARBALL, else <repo>/../shared/data/cifar10-jpeg.tar.gz (a shared/
#            folder next to the checkout; its README.md describes the archive)
#   DEST     default: <repo>/data/cifar10-jpeg
# Idempotent: does nothing if DEST already holds both splits with 50000 + 10000 images.
# Exit codes: 0 ready, 2 no tarball at TARBALL (scripts/setup.sh then goes on without it), 1 a bad archive.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tarball="${1:-${CIFAR10_JPEG_TARBALL:-${repo_root}/../shared/data/cifar10-jpeg.tar.gz}}"
dest="${2:-${repo_root}/data/cifar10-jpeg}"

count() { find "$1" -type f -name '*.jpg' 2>/dev/null | wc -l; }

if [[ -d "${dest}/train" && -d "${dest}/test" ]] \
   && [[ "$(count "${dest}/train")" -eq 50000 && "$(count "${dest}/test")" -eq 10000 ]]; then
  echo "already prepared: ${dest} (50000 train + 10000 test JPEGs)"
  exit 0
fi

if [[ ! -f "${tarball}" ]]; then
  echo "error: tarball not found: ${tarball}" >&2
  echo "set CIFAR10_JPEG_TARBALL or pass the path as the first argument" >&2
  exit 2
fi

# The tarball's top level is train/ and test/ (ImageFolder layout). Detect a single wrapping
# directory anyway, so a re-packed archive (cifar10-jpeg/train/...) also lands in the right place.
first="$(set +o pipefail; tar tzf "${tarball}" 2>/dev/null | head -n 1)"
strip=0
case "${first}" in
  train/*|test/*|./train/*|./test/*) strip=0 ;;
  */*) strip=1 ;;
esac

tmp="${dest}.tmp.$$"
rm -rf "${tmp}"
mkdir -p "${tmp}"
trap 'rm -rf "${tmp}"' EXIT
tar -xzf "${tarball}" -C "${tmp}" --strip-components="${strip}"

for split in train test; do
  if [[ ! -d "${tmp}/${split}" ]]; then
    echo "error: ${tarball} has no ${split}/ directory after extraction" >&2
    exit 1
  fi
done
n_train="$(count "${tmp}/train")"
n_test="$(count "${tmp}/test")"
echo "extracted ${n_train} train + ${n_test} test JPEGs"

rm -rf "${dest}"
mkdir -p "$(dirname "${dest}")"
mv "${tmp}" "${dest}"
trap - EXIT
echo "ready: ${dest}"
