#!/usr/bin/env bash
# Regenerates tests/fixtures/parity, the reference logits tests/parity.rs checks the Rust
# model code against, with pinned PyTorch + transformers in a cached virtualenv
# (${ICDBENCH_CACHE:-$HOME/.cache/icdbench}/venv-parity, set up by venv-parity.sh). Idempotent: the
# venv is set up once (a marker records the pins), and the fixtures come out byte-identical every run.
# Needs no network after set-up: HF_HUB_OFFLINE=1, the checkpoints are random.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
say() { printf '[parity] %s\n' "$*"; }

python="$(bash "$root/scripts/parity/venv-parity.sh")"
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$python" "$root/scripts/parity/make_fixtures.py"
say "done: run \`cargo test --test parity\`, then commit tests/fixtures/parity"
