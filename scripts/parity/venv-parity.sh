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

cache="${ICDBENCH_CACHE:-$HOME/.cache/icdbench}"
venv="$cache/venv-parity"
pins=(torch==2.11.0 transformers==5.24.0 peft==0.21.2 safetensors numpy gguf==0.19.0)
want="$(printf '%s\n' "${pins[@]}" | sha256sum | cut -d' ' -f1)"
marker="$venv/.icdbench-parity-ready"

command -v python3 >/dev/null || { echo "[venv-parity] python3 not found: it is needed for the reference implementation" >&2; exit 2; }
if [[ -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
  echo "[venv-parity] reference environment ready in $venv" >&2
else
  echo "[venv-parity] installing ${pins[*]} into $venv (about 3 GB, once)" >&2
  mkdir -p "$cache"
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
  "$venv/bin/python" -c 'import torch, transformers, peft' \
    || { echo "[venv-parity] $venv: import torch, transformers, peft fails after install; remove it and rerun" >&2; exit 1; }
  echo "$want" > "$marker"
fi
echo "$venv/bin/python"
