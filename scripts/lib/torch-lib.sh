# shellcheck shell=bash
# Finds the lib folder of an installed torch 2.11 (sourced, not run), for running an icdbench
# binary built elsewhere: the GPU machines' /opt/torch/.venv first, then python3 on PATH.
# Prints the folder; fails when neither python imports torch.
torch_lib_dir() {
    local py dir
    for py in /opt/torch/.venv/bin/python python3; do
        dir="$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)" \
            && [[ -d "$dir" ]] && { echo "$dir"; return 0; }
    done
    return 1
}
