# shellcheck shell=bash
# Helpers for running an icdbench binary built elsewhere (sourced, not run).
#
# torch_lib_dir: the lib folder of an installed torch 2.11: the GPU machines'
# /opt/torch/.venv first, then python3 on PATH. Prints the folder; fails when neither python
# imports torch.
torch_lib_dir() {
    local py dir
    for py in /opt/torch/.venv/bin/python python3; do
        dir="$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)" \
            && [[ -d "$dir" ]] && { echo "$dir"; return 0; }
    done
    return 1
}

# Prints the path of a runnable icdbench binary from BINARY or BINARY.xz, unpacking an .xz
# into the folder WORK (with xz, or Python's lzma where xz is not installed); fails with a
# message when the result is not executable.
executable_binary() {
    local bin="$1" work="$2"
    if [[ "$bin" == *.xz ]]; then
        if command -v xz > /dev/null; then
            xz -dc "$bin" > "$work/icdbench" || return 2
        else
            python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$bin" "$work/icdbench" || return 2
        fi
        chmod +x "$work/icdbench"
        bin="$work/icdbench"
    fi
    [[ -x "$bin" ]] || { echo "$bin is not an executable" >&2; return 2; }
    echo "$bin"
}
