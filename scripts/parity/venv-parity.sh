#!/usr/bin/env bash
# Sets up (once) the pinned PyTorch + transformers + PEFT virtualenv that the reference
# implementation runs in (${ICDBENCH_CACHE:-$HOME/.cache/icdbench}/venv-parity) and prints its python.
# Used by scripts/parity/regenerate.sh (reference logits) and scripts/bench/compare.sh (reference timings).
# Idempotent: a marker records the pins, and a changed pin list installs again over the venv.
#
# torch is installed from PyPI in full (the CUDA build, about 3 GB with its nvidia wheels, once).
# The libtorch venv of scripts/setup.sh cannot stand in for it: that one holds only the CUDA
# runtime and CUPTI, and Python's `import torch` needs cuBLAS, cuDNN, NCCL and the rest as well.
set -euo pipefail
# shellcheck source=scripts/lib/venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/venv.sh"
pinned_venv venv-parity venv-parity "import torch, transformers, peft" \
  torch==2.11.0 transformers==5.24.0 peft==0.21.2 safetensors numpy gguf==0.19.0
