#!/usr/bin/env bash
# Build .venv-reference: the reference implementations that the checks in tests/reference/ compare selfsup with.
# LightlySSL 1.6.0 needs torchvision, and torchvision does not import with the project's torch 2.13, so the
# references live in a virtual environment of their own: torch 2.14.1 + torchvision 0.29.1 + lightly 1.6.0 over the
# project's environment (--system-site-packages: selfsup, scikit-learn, torch_geometric, ts2vec come from it).
# The non-image references (tests/reference/test_other_*.py): sentence-transformers, TabularS3L (ts3l, with the
# pytorch_lightning it imports), PyGCL and byol-pytorch, each pinned and installed without dependencies, so that
# none of them moves torch.
# Idempotent: a complete environment is kept; a half-built one is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-reference
OTHERS=(sentence-transformers==6.3.0 ts3l==0.70 pytorch_lightning==2.6.6 torchmetrics==1.9.0
        lightning-utilities==0.15.3 PyGCL==0.1.2 byol-pytorch==0.9.1 einops==0.8.2 beartype==0.23.1 accelerate==1.16.0)
STAMP="$VENV/.complete-torch2.14.1-tv0.29.1-lightly1.6.0-st6.3.0-ts3l0.70-pl2.6.6-tm1.9.0-lu0.15.3-pygcl0.1.2-byol0.9.1-einops0.8.2-bt0.23.1-acc1.16.0"
if [ ! -f "$STAMP" ]; then
  rm -rf "$VENV"
  python3 -m venv --system-site-packages "$VENV"
  # lightly's loss and module code imports torch, torchvision and numpy only: its training-framework
  # requirements (pytorch_lightning, hydra-core) are not needed by it (pytorch_lightning comes for TabularS3L).
  "$VENV/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1 >&2
  "$VENV/bin/python" -m pip install -q --no-deps lightly==1.6.0 >&2
  "$VENV/bin/python" -m pip install -q --no-deps "${OTHERS[@]}" >&2
  "$VENV/bin/python" -c "import torch, torchvision, lightly.loss, lightly.models.modules"
  "$VENV/bin/python" -c "import sentence_transformers, ts3l.pl_modules, byol_pytorch.byol_pytorch, torch_geometric, ts2vec"
  "$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.14.1'), torch.__version__"
  touch "$STAMP"
fi
echo "$VENV/bin/python"
