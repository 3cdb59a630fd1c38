#!/usr/bin/env bash
# icdbench against PyTorch + transformers + PEFT on a GPU machine, bf16, in at most 8 minutes:
# the H200-class targets (LoRA step MFU and speed on a Llama-3.2-1B shape, peak memory of a
# checkpointed Llama-3.1-8B step), then batched generation and the SmolLM2 step of earlier runs.
#   scripts/gpu-bench.sh BINARY[.xz] [OUT.json]
# For a machine with torch 2.11 + CUDA, transformers and peft in /opt/torch/.venv, no Rust
# toolchain and no network. One process per case and framework, each under its own timeout;
# a case that times out or fails is recorded with its stderr tail and the run goes on.
# Writes OUT.json (default: $OUT/gpu-bench.json when $OUT is set, else ./gpu-bench.json) with the
# device, every JSON line of both sides, the ratio rows and each run's status; prints the table.
# MFU divides by the GPU's dense bf16 peak, looked up from its name; ICDBENCH_PEAK_TFLOPS=X overrides.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/torch-lib.sh
source "$root/scripts/lib/torch-lib.sh"
# shellcheck source=scripts/bench/cases.sh
source "$root/scripts/bench/cases.sh"

bin="${1:?usage: gpu-bench.sh BINARY[.xz] [OUT.json]}"
if [[ -n "${2:-}" ]]; then json="$2"; elif [[ -n "${OUT:-}" ]]; then json="$OUT/gpu-bench.json"; else json="$PWD/gpu-bench.json"; fi
budget_s="${ICDBENCH_BENCH_BUDGET_S:-480}"  # the whole run, both frameworks (ICDBENCH_BENCH_BUDGET_S overrides)

# Most important first: when the budget runs out, what is left is the least needed.
# "case timeout_s repeats"; the large shapes get 2 repeats after the one warm-up both sides run.
plan=(
  "lora_step/llama-3.2-1b/b1xs2048 90 2"
  "lora_step/llama-3.2-1b/b1xs2048+ckpt 90 2"
  "lora_step/llama-3.1-8b/b1xs4096+ckpt 150 2"
  "generate/llama-3.2-1b/b1/p256+n32 60 2"
  "generate/llama-3.2-1b/b16/p256+n32 60 2"
  "generate/llama-3.2-1b/b64/p256+n32 60 2"
  "generate/smollm2-135m/b1/p256+n32 60 3"
  "generate/smollm2-135m/b16/p256+n32 60 3"
  "generate/smollm2-135m/b64/p256+n32 60 3"
  "lora_step/smollm2-135m/b8xs128 60 3"
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bin="$(executable_binary "$bin" "$work")" || exit 2
python=/opt/torch/.venv/bin/python
[[ -x "$python" ]] || python="$(command -v python3)" || { echo "no python with torch found" >&2; exit 2; }
torch_lib="$(torch_lib_dir)" || { echo "no torch lib folder found (is torch installed in /opt/torch/.venv?)" >&2; exit 2; }
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
runs="$work/runs"
mkdir -p "$runs"

gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1 || true)"
IFS=',' read -r gpu_name gpu_driver gpu_memory <<< "$gpu"
# One MFU denominator for both sides: the dense bf16 peak (pytorch_reference.py's table), or ICDBENCH_PEAK_TFLOPS.
case "${gpu_name:-}" in
  *H100*|*H200*) peak=989 ;;
  *A100*) peak=312 ;;
  *L40S*) peak=362 ;;
  *) peak="" ;;
esac
peak="${ICDBENCH_PEAK_TFLOPS:-$peak}"
echo "[gpu-bench] ${gpu:-no nvidia-smi}; peak ${peak:-unknown} TFLOP/s; torch lib $torch_lib; budget ${budget_s}s"

start=$SECONDS
i=0
for entry in "${plan[@]}"; do
  read -r name limit repeats <<< "$entry"
  mapfile -t args < <(case_args "$name")
  args+=(--device cuda --dtype bf16 --threads "$(nproc)" --lora-dropout 0.05 --repeats "$repeats")
  [[ -z "$peak" ]] || args+=(--peak-tflops "$peak")
  for framework in icdbench pytorch; do
    left=$((budget_s - (SECONDS - start)))
    if ((left < 20)); then
      echo "[gpu-bench] $framework $name: skipped, the ${budget_s}s budget is spent" >&2
      printf '%s\n' "$name" > "$runs/$(printf '%02d' "$i").$framework.cmd"  # no .rc: recorded as skipped
      continue
    fi
    ((limit < left)) || limit=$left
    if [[ "$framework" == icdbench ]]; then
      run_case "$runs" "$i" icdbench "$name" "$limit" "$bin" speed "${args[@]}"
    else
      run_case "$runs" "$i" pytorch "$name" "$limit" "$python" "$root/scripts/bench/pytorch_reference.py" "${args[@]}"
    fi
  done
  i=$((i + 1))
done

echo
"$python" "$root/scripts/bench/ratios.py" "$runs" --json "$json" \
  --meta "gpu=${gpu_name:-}" --meta "driver=${gpu_driver# }" --meta "gpu_memory=${gpu_memory# }" \
  --meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" --meta "torch_lib=$torch_lib" --meta "binary=$1" --meta "dtype=bf16" \
  --meta "seconds_total=$((SECONDS - start))" --meta "budget_seconds=$budget_s" --meta "peak_tflops=${peak:-}"
