# shellcheck shell=bash
# A pinned virtualenv under ${ICDBENCH_CACHE:-$HOME/.cache/icdbench} (sourced, not run).
#   pinned_venv NAME TAG IMPORTS PIN...
# Sets up NAME once with the pins and prints its python. A marker records the pins, so a
# changed pin list installs again over the venv; IMPORTS (a python import statement, or "")
# must succeed before the marker is written. Messages go to stderr, tagged [TAG].
pinned_venv() {
  local name="$1" tag="$2" imports="$3"; shift 3
  local cache="${ICDBENCH_CACHE:-$HOME/.cache/icdbench}"
  local venv="$cache/$name" want marker
  want="$(printf '%s\n' "$@" | sha256sum | cut -d' ' -f1)"
  marker="$venv/.icdbench-${name#venv-}-ready"
  command -v python3 >/dev/null || { echo "[$tag] python3 not found: it is needed for $name" >&2; return 2; }
  if [[ -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
    echo "[$tag] environment ready in $venv" >&2
  else
    echo "[$tag] installing $* into $venv" >&2
    mkdir -p "$cache"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
    if [[ -n "$imports" ]]; then
      "$venv/bin/python" -c "$imports" || { echo "[$tag] $venv: \`$imports\` fails after install; remove it and rerun" >&2; return 1; }
    fi
    echo "$want" > "$marker"
  fi
  echo "$venv/bin/python"
}
