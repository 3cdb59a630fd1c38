#!/usr/bin/env bash
# Regenerates tests/fixtures/parity, the reference logits tests/parity.rs checks the Rust
# model code against, with pinned PyTorch + transformers in a cached virtualenv
# (${ICDBENCH_CACHE:-$HOME/.cache/icdbench}/venv-parity). Idempotent: the venv is set up
# once (a marker records the pins), and the fixtures come out byte-identical every run.
# Needs no network after set-up: HF_HUB_OFFLINE=1, the checkpoints are random.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${ICDBENCH_CACHE:-$HOME/.cache/icdbench}"
venv="$cache/venv-parity"
pins=(torch==2.11.0 transformers==5.24.0 peft==0.21.2 safetensors numpy gguf==0.19.0)
want="$(printf '%s\n' "${pins[@]}" | sha256sum | cut -d' ' -f1)"
marker="$venv/.icdbench-parity-ready"

say() { printf '[parity] %s\n' "$*"; }

command -v python3 >/dev/null || { echo "[parity] python3 not found: it is needed for the reference implementation" >&2; exit 2; }

if [[ -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
  say "reference environment ready in $venv"
else
  # torch 2.11.0 from PyPI is the CUDA build: about 3 GB with its nvidia wheels, once.
  say "installing ${pins[*]} into $venv"
  mkdir -p "$cache"
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  echo "$want" > "$marker"
fi

HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$venv/bin/python" "$root/scripts/parity/make_fixtures.py"
say "done: run \`cargo test --test parity\`, then commit tests/fixtures/parity"
