#!/usr/bin/env bash
# Side by side, in one run on one machine: icdbench (tch) versus PyTorch + transformers + PEFT
# on the same workloads (a LoRA step, greedy decoding) and shapes (tiny, SmolLM2-135M).
#   scripts/bench/compare.sh [--device cpu|cuda] [--shapes tiny,smollm2] [--threads N] [--bin PATH] [--python PATH]
# Prints both timing lines and a table of ratios (PyTorch seconds / icdbench seconds: > 1 means icdbench is faster).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
device=cpu; shapes=tiny,smollm2; threads="$(nproc)"; dtype=f32
bin="$root/target/release/icdbench"; [[ -x "$bin" ]] || bin="$root/target/debug/icdbench"
python="${ICDBENCH_CACHE:-$HOME/.cache/icdbench}/venv-parity/bin/python"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --shapes) shapes="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --dtype) dtype="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x "$bin" ]] || { echo "no icdbench binary: cargo build --release (or pass --bin)" >&2; exit 2; }
[[ -x "$python" ]] || { echo "no PyTorch venv at $python: bash scripts/parity/regenerate.sh makes it (or pass --python)" >&2; exit 2; }
pydtype=float32; [[ "$dtype" == bf16 ]] && pydtype=bfloat16
out="$(mktemp)"
# Alternate the frameworks per shape so machine load drifts affect both alike.
for shape in ${shapes//,/ }; do
  "$bin" speed --shapes "$shape" --device "$device" --dtype "$dtype" --threads "$threads" | tee -a "$out"
  "$python" "$root/scripts/bench/pytorch_reference.py" --shapes "$shape" --device "$device" --dtype "$pydtype" --threads "$threads" | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ours = {r["case"]: r for r in rows if r.get("framework", "").startswith("icdbench")}
theirs = {r["case"]: r for r in rows if not r.get("framework", "").startswith("icdbench")}
print(f"\n| case | device | icdbench s | PyTorch s | PyTorch/icdbench |")
print("|---|---|---|---|---|")
for case, o in ours.items():
    t = theirs.get(case)
    if t:
        print(f"| {case} | {o['device']} | {o['seconds_median']:.4f} | {t['seconds_median']:.4f} | {t['seconds_median'] / o['seconds_median']:.2f} |")
PY
rm -f "$out"
