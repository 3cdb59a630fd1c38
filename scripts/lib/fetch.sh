# Helpers for the table-building scripts (sourced, not run): a file's sha256 and pip.
sha256_of() {
    if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
    else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

pip_cmd() {
    if command -v pip >/dev/null; then pip "$@"; else python3 -m pip "$@"; fi
}
