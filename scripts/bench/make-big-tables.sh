#!/usr/bin/env bash
# Writes LARGE synthetic MIMIC-III NOTEEVENTS + MDACE and MIMIC-IV ICD-10 tables (real sizes,
# made-up text, real codes) for memory and load-time measurements; see make_big_tables.py.
#   scripts/bench/make-big-tables.sh --out /work/big [--noteevents-rows N] [--mimic-rows N] [--words N] [--seed S] ...
#   scripts/bench/make-big-tables.sh --check /work/big     # one streaming pass: layout, schema, MDACE offsets
# Uses the pinned venv of scripts/fixtures/make_mimic_fixture.sh
# (${ICDBENCH_CACHE:-$HOME/.cache/icdbench}/venv-mimic-fixture), setting it up the same way if it
# is missing. The output (~2 GB gzip + ~1.5 GB feather by default) is never committed.
# Defaults take about 5 minutes on one core (3.7 GB peak RSS); run it under `nice -n 19` on a shared machine.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="$(bash "$root/scripts/fixtures/venv-mimic.sh")"

# One thread: the generation is single-threaded by design (numpy draws, Python joins).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
if [[ "${1:-}" == "--check" ]]; then
  shift
  exec "$python" "$root/scripts/bench/check_big_tables.py" "$@"
fi
exec "$python" "$root/scripts/bench/make_big_tables.py" "$@"
