#!/usr/bin/env bash
# Installs the real models and data the accuracy tests use (listed below);
# nothing is shipped in the repository. Safe to re-run: each step is skipped
# when its result is already there.
#   - Fashion-MNIST (Debian package dataset-fashion-mnist)
#   - 5000 real handwritten digits (digits.png from the opencv-doc .deb, extracted
#     into .data/ without installing the package)
#   - a pretrained MNIST CNN (pip digit-recognizer-py, --no-deps: it would pull
#     torchvision and another torch) and Pillow to read the PNG
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  echo "qext data: installing dataset-fashion-mnist"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

digits=.data/opencv_digits.png
if [ ! -f "$digits" ]; then
  echo "qext data: extracting digits.png from opencv-doc"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq && apt-get download opencv-doc >/dev/null; })
  dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb \
    | tar -x -C "$tmp" ./usr/share/doc/opencv-doc/examples/data/digits.png
  mkdir -p .data
  mv "$tmp"/usr/share/doc/opencv-doc/examples/data/digits.png "$digits.part"
  mv "$digits.part" "$digits"
fi

PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/constraints.txt)
.venv/bin/python -c "import PIL" 2>/dev/null || "${PIP[@]}" pillow
.venv/bin/python -c "import importlib.util as u; exit(u.find_spec('digit_recognizer') is None)" \
  || "${PIP[@]}" --no-deps digit-recognizer-py==0.1.0
echo "qext data: done"
