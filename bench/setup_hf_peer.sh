#!/usr/bin/env bash
# Create the Hugging Face + PyTorch virtual environment that bench/bert_vs_peers.py runs its peer in.
# It lives OUTSIDE the repository (torch is never a project dependency):
#   ${FROMZERO_PEER_VENV:-$HOME/.cache/fromzero/hf-peer-venv}
# torch comes from pip's configured index (PyPI's torch pulls ~5.6 GB of CUDA wheels); set
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for the CPU-only wheels (same CPU kernels).
set -euo pipefail
VENV="${FROMZERO_PEER_VENV:-$HOME/.cache/fromzero/hf-peer-venv}"
PYTHON="${PYTHON:-python3}"
case "$(cd "$(dirname "$VENV")" 2>/dev/null && pwd)/" in
  "$(cd "$(dirname "$0")/.." && pwd)/"*) echo "error: the peer venv must live outside the repository, not in $VENV" >&2; exit 2;;
esac
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch
"$VENV/bin/python" -m pip install transformers numpy peft  # peft: the LoRA peer of bench/finetuning_methods.py
"$VENV/bin/python" -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
echo "peer venv ready: $VENV"
