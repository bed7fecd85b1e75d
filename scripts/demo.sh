#!/usr/bin/env bash
# Sets up qext (scripts/setup.sh) and runs the main job on the bundled example:
# quantize examples/digits_mlp.pt with the qext CLI and print size, speed and
# accuracy before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/demo.py
