#!/usr/bin/env bash
# Build .venv-reference: the reference implementations that the checks in tests/reference/ compare selfsup with.
# LightlySSL 1.6.0 needs torchvision, and torchvision does not import with the project's torch 2.13, so the
# references live in a virtual environment of their own: torch 2.14.1 + torchvision 0.29.1 + lightly 1.6.0 over the
# project's environment (--system-site-packages: selfsup, scikit-learn, torch_geometric, ts2vec come from it).
# Idempotent: a complete environment is kept; a half-built one is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-reference
STAMP="$VENV/.complete-torch2.14.1-tv0.29.1-lightly1.6.0"
if [ ! -f "$STAMP" ]; then
  rm -rf "$VENV"
  python3 -m venv --system-site-packages "$VENV"
  # lightly's loss and module code imports torch, torchvision and numpy only: its training-framework
  # requirements (pytorch_lightning, hydra-core) are left out.
  "$VENV/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1 >&2
  "$VENV/bin/python" -m pip install -q --no-deps lightly==1.6.0 >&2
  "$VENV/bin/python" -c "import torch, torchvision, lightly.loss, lightly.models.modules"
  touch "$STAMP"
fi
echo "$VENV/bin/python"
