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
cache="${ICDBENCH_CACHE:-$HOME/.cache/icdbench}"
venv="$cache/venv-mimic-fixture"
# The same pins and marker as make_mimic_fixture.sh, so both scripts share one venv.
pins=(pandas==2.2.3 pyarrow==21.0.0 numpy==2.2.6)
want="$(printf '%s\n' "${pins[@]}" | sha256sum | cut -d' ' -f1)"
marker="$venv/.icdbench-mimic-fixture-ready"

say() { printf '[big-tables] %s\n' "$*"; }

command -v python3 >/dev/null || { echo "[big-tables] python3 not found" >&2; exit 2; }

if [[ -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
  say "environment ready in $venv"
else
  say "installing ${pins[*]} into $venv"
  mkdir -p "$cache"
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  echo "$want" > "$marker"
fi

# One thread: the generation is single-threaded by design (numpy draws, Python joins).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
if [[ "${1:-}" == "--check" ]]; then
  shift
  exec "$venv/bin/python" "$root/scripts/bench/check_big_tables.py" "$@"
fi
exec "$venv/bin/python" "$root/scripts/bench/make_big_tables.py" "$@"
