# shellcheck shell=bash
# Runs benchmark cases for scripts/bench/compare.sh and scripts/gpu-bench.sh (sourced, not run).
# A case is named as both frameworks print it, and the name is the whole configuration:
#   lora_step/<shape>/b<batch>xs<seq>[+ckpt]     generate/<shape>/b<batch>/p<prompt>+n<new>
# Each run (one framework, one case, one process) leaves four files in a work folder:
#   NN.<framework>.cmd / .out / .err / .rc      (.rc: exit status and wall milliseconds)
# that scripts/bench/ratios.py turns into the table and the JSON document.

# Prints the speed arguments of a case name, one per line; fails on a name it cannot read.
case_args() {
    local name="$1"
    local lora='^lora_step/([^/]+)/b([0-9]+)xs([0-9]+)(\+ckpt)?$'
    local gen='^generate/([^/]+)/b([0-9]+)/p([0-9]+)\+n([0-9]+)$'
    if [[ "$name" =~ $lora ]]; then
        printf '%s\n' --shapes "${BASH_REMATCH[1]}" --cases lora_step --batch "${BASH_REMATCH[2]}" \
            --seq "${BASH_REMATCH[3]}" --prompt 256 --new-tokens 32
        [[ -z "${BASH_REMATCH[4]}" ]] || echo --checkpointing
    elif [[ "$name" =~ $gen ]]; then
        printf '%s\n' --shapes "${BASH_REMATCH[1]}" --cases generate --batch "${BASH_REMATCH[2]}" \
            --seq 128 --prompt "${BASH_REMATCH[3]}" --new-tokens "${BASH_REMATCH[4]}"
    else
        echo "unreadable case name '$name': expected lora_step/SHAPE/bBxsS[+ckpt] or generate/SHAPE/bB/pP+nN" >&2
        return 2
    fi
}

# Reads case names from a file: one per line, '#' starts a comment, blank lines skipped.
read_cases() {
    sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e 's/^[[:space:]]*//' "$1" | grep -v '^$' || true
}

# run_case WORK INDEX FRAMEWORK CASE TIMEOUT_S COMMAND...
# Runs one process under `timeout` (0: none) and records it; never fails, so one broken case
# cannot end the run. Its JSON lines are echoed as they come.
run_case() {
    local work="$1" index="$2" framework="$3" name="$4" limit="$5"; shift 5
    local stem rc start
    stem="$work/$(printf '%02d' "$index").$framework"
    printf '%s\n' "$name" "$@" > "$stem.cmd"
    start="$(date +%s%N)"
    rc=0
    if [[ "$limit" == 0 ]]; then
        "$@" > "$stem.out" 2> "$stem.err" || rc=$?
    else
        timeout --kill-after=10 "$limit" "$@" > "$stem.out" 2> "$stem.err" || rc=$?
    fi
    echo "$rc $(( ($(date +%s%N) - start) / 1000000 ))" > "$stem.rc"
    grep '^{' "$stem.out" && return 0
    if [[ "$rc" == 124 || "$rc" == 137 ]]; then
        echo "[bench] $framework $name: timed out after ${limit}s" >&2
    else
        echo "[bench] $framework $name: exit $rc: $(tail -n 1 "$stem.err")" >&2
    fi
}
