#!/usr/bin/env bash
# Side by side, in one run on one machine: icdbench (tch) versus PyTorch + transformers + PEFT
# (scripts/bench/pytorch_reference.py) on the same workloads and shapes, one process per case
# and framework, the two frameworks alternating case by case so load drifts hit both alike.
#   scripts/bench/compare.sh [--device cpu|cuda] [--dtype f32|bf16] [--threads N] [--bin PATH]
#       [--python PATH] [--configs FILE] [--repeats N] [--peak-tflops X] [--timeout S] [--json OUT]
# --configs: a file of case names, one per line (see scripts/bench/cases.sh), for example
#   lora_step/smollm2-135m/b8xs128+ckpt
#   generate/llama-3.2-1b/b16/p256+n32
# Prints each JSON line, then a table of PyTorch / icdbench ratios (time > 1: icdbench is
# faster; memory > 1: icdbench needs less). --json OUT writes every line and the ratio rows.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/bench/cases.sh
source "$root/scripts/bench/cases.sh"

default_cases=(
  lora_step/tiny/b8xs128
  lora_step/smollm2-135m/b8xs128
  lora_step/smollm2-135m/b8xs128+ckpt
  generate/tiny/b1/p256+n32
  generate/smollm2-135m/b1/p256+n32
  generate/smollm2-135m/b16/p256+n32
)
device=cpu; dtype=f32; threads="$(nproc)"; configs=""; repeats=""; peak=""; limit=0; json=""
bin="$root/target/release/icdbench"; [[ -x "$bin" ]] || bin="$root/target/debug/icdbench"
python=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --dtype) dtype="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --configs) configs="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --peak-tflops) peak="$2"; shift 2 ;;
    --timeout) limit="$2"; shift 2 ;;
    --json) json="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$dtype" in f32|float32) dtype=f32 ;; bf16|bfloat16) dtype=bf16 ;; *) echo "--dtype: f32 or bf16, not $dtype" >&2; exit 2 ;; esac
[[ -x "$bin" ]] || { echo "no icdbench binary at $bin: cargo build --release (or pass --bin)" >&2; exit 2; }
[[ -n "$python" ]] || python="$(bash "$root/scripts/parity/venv-parity.sh")"
[[ -x "$python" ]] || { echo "no python at $python (pass --python)" >&2; exit 2; }

if [[ -n "$configs" ]]; then
  [[ -f "$configs" ]] || { echo "no configs file $configs" >&2; exit 2; }
  mapfile -t cases < <(read_cases "$configs")
else
  cases=("${default_cases[@]}")
fi
for name in "${cases[@]}"; do case_args "$name" >/dev/null || exit 2; done

common=(--device "$device" --dtype "$dtype" --threads "$threads" --lora-dropout 0.05)
[[ -z "$repeats" ]] || common+=(--repeats "$repeats")
[[ -z "$peak" ]] || common+=(--peak-tflops "$peak")

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
i=0
for name in "${cases[@]}"; do
  mapfile -t args < <(case_args "$name")
  run_case "$work" "$i" icdbench "$name" "$limit" "$bin" speed "${args[@]}" "${common[@]}"
  run_case "$work" "$i" pytorch "$name" "$limit" "$python" "$root/scripts/bench/pytorch_reference.py" "${args[@]}" "${common[@]}"
  i=$((i + 1))
done
echo
meta=(--meta "device=$device" --meta "dtype=$dtype" --meta "threads=$threads" --meta "binary=$bin" --meta "host=${HOSTNAME:-}"
  --meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
"$python" "$root/scripts/bench/ratios.py" "$work" ${json:+--json "$json"} "${meta[@]}"
