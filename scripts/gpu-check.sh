#!/usr/bin/env bash
# Checks a built icdbench binary on a GPU machine that has a CUDA-enabled torch 2.11:
# libtorch_cuda loads, CUDA is available, and a forward/backward on cuda:0 matches CPU.
#   scripts/gpu-check.sh path/to/icdbench [path/to/torch/lib]
set -euo pipefail
bin="${1:?usage: gpu-check.sh BINARY [TORCH_LIB_DIR]}"
torch_lib="${2:-}"
# shellcheck source=scripts/lib/torch-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/torch-lib.sh"
[[ -n "$torch_lib" ]] || torch_lib="$(torch_lib_dir)" || true
[[ -d "$torch_lib" ]] || { echo "no torch lib folder found; pass it as the second argument" >&2; exit 2; }
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "torch lib: $torch_lib"
"$bin" info --device cuda
"$bin" info --device auto | grep -q 'smoke test on cuda:0' || { echo "device auto did not pick cuda:0" >&2; exit 1; }
echo "gpu-check: ok"
