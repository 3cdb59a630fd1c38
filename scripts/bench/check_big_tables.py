#!/usr/bin/env python3
"""Checks what make_big_tables.py wrote, cheaply (one streaming pass over NOTEEVENTS):

- NOTEEVENTS.csv.gz: the exact header; the first rows parse (csv and pandas.read_csv);
  then, streaming, every row has 11 fields and ROW_ID runs 1..N.
- mimiciv_icd10.feather / _split.feather: the Arrow schema and pandas metadata of
  tests/fixtures/mimic/ (only the RangeIndex stop differs); the first rows look right.
- MDACE: 181/60/61 split ids, one chart per id; --samples random annotations are shown with
  the text they slice from their note's CSV TEXT, and every annotation is checked the same way
  (begin/end inside the note, the slice one of the phrases for its code, on word boundaries,
  the note a "Discharge summary" of the chart's HADM_ID).
"""

import argparse
import csv
import gzip
import json
import random
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.feather as pa_feather

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_big_tables import FIXTURE_TABLE, HEADER, MDACE_CHARTS, MDACE_CODES  # noqa: E402

csv.field_size_limit(1 << 30)


def meta_without_stop(schema):
    meta = json.loads(schema.metadata[b"pandas"])
    for ix in meta["index_columns"]:
        if isinstance(ix, dict):
            ix.pop("stop", None)
    return meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    d = args.dir
    fail = []

    # --- feather
    if (d / "mimiciv_icd10.feather").exists():
        for name, fixture in [("mimiciv_icd10.feather", FIXTURE_TABLE), ("mimiciv_icd10_split.feather", FIXTURE_TABLE.with_name("mimiciv_icd10_split.feather"))]:
            got = pa.ipc.open_file(d / name)
            want = pa.ipc.open_file(fixture)
            same_types = got.schema.remove_metadata().equals(want.schema.remove_metadata())
            same_meta = meta_without_stop(got.schema) == meta_without_stop(want.schema)
            rows = pa_feather.read_table(d / name, columns=["_id"]).num_rows  # reads one column only
            print(f"{name}: {got.num_record_batches} record batches, {rows:,} rows; "
                  f"schema == fixture: {same_types}; pandas metadata == fixture (but stop): {same_meta}")
            if not (same_types and same_meta):
                fail.append(f"{name} schema")
                print(got.schema)
        # The first record batch (64K rows, ~1 GB decompressed): Edin-style text and counts.
        first = pa.ipc.open_file(d / "mimiciv_icd10.feather").get_batch(0)
        sample = first.slice(0, 2000).to_pandas()
        del first
        clean = sample["text"].str.fullmatch(r"[a-z0-9]+( [a-z0-9]+)*").all()
        words_ok = (sample["text"].str.count(" ") + 1 == sample["num_words"]).all()
        targets_ok = all(list(t) == list(p) + list(g) for t, p, g in zip(sample["target"], sample["icd10_proc"], sample["icd10_diag"]))
        sorted_ok = all(list(x) == sorted(x) for col in ("icd10_proc", "icd10_diag") for x in sample[col])
        dotted_ok = all("." in c for x in sample["icd10_diag"] for c in x) and not any("." in c for x in sample["icd10_proc"] for c in x)
        print(f"  first 2000 rows: text lower-case words only {clean}; num_words = spaces + 1 {words_ok}; target = proc + diag {targets_ok}; "
              f"lists sorted {sorted_ok}; diagnoses dotted, procedures not {dotted_ok}")
        if not (clean and words_ok and targets_ok and sorted_ok and dotted_ok):
            fail.append("MIMIC-IV rows")
        t = sample.head(2)
        for col in t.columns:
            v = t[col].iloc[0]
            print(f"  {col:12} {str(list(v) if hasattr(v, '__len__') and not isinstance(v, str) else v)[:110]}")
    else:
        print("no mimiciv_icd10.feather (--only noteevents?)")

    # --- MDACE files and NOTEEVENTS
    if (d / "NOTEEVENTS.csv.gz").exists():
        mdace = d / "MDACE"
        split_ids = {}
        for name, n in zip(["train", "val", "test"], MDACE_CHARTS):
            ids = [int(x) for x in (mdace / "splits" / "Inpatient" / f"MDace-ev-{name}.csv").read_text().split()]
            split_ids[name] = ids
            if len(ids) != n:
                fail.append(f"{name} split has {len(ids)} ids, not {n}")
        charts = {}
        for p in sorted((mdace / "data" / "Inpatient" / "ICD-10" / "1.0").glob("*.json")):
            c = json.loads(p.read_text())
            charts[c["hadm_id"]] = c
        all_ids = [i for ids in split_ids.values() for i in ids]
        print(f"MDACE: {len(charts)} charts; splits {[len(v) for v in split_ids.values()]}; every split id has a chart: {set(all_ids) == set(charts)}")
        if set(all_ids) != set(charts) or len(all_ids) != len(set(all_ids)):
            fail.append("split ids and charts differ")
        anns = [(c["hadm_id"], n["note_id"], a) for c in charts.values() for n in c["notes"] for a in n["annotations"]]
        wanted = {n["note_id"]: c["hadm_id"] for c in charts.values() for n in c["notes"]}
        phrases = {code: ps for code, _, _, ps in MDACE_CODES}

        # --- NOTEEVENTS: header, first rows, then one streaming pass
        path = d / "NOTEEVENTS.csv.gz"
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            first = f.readline()
        want_header = ",".join(f'"{h}"' for h in HEADER) + "\n"
        print(f"NOTEEVENTS header exact: {first == want_header}")
        if first != want_header:
            fail.append(f"header {first!r}")
        head = pd.read_csv(path, nrows=3, dtype=str, keep_default_na=False)
        for _, r in head.iterrows():
            print(f"  ROW_ID {r.ROW_ID} SUBJECT_ID {r.SUBJECT_ID} HADM_ID {r.HADM_ID!r} CHARTDATE {r.CHARTDATE} CHARTTIME {r.CHARTTIME!r} STORETIME {r.STORETIME!r} "
                  f"CATEGORY {r.CATEGORY!r} DESCRIPTION {r.DESCRIPTION!r} CGID {r.CGID!r} ISERROR {r.ISERROR!r} TEXT {len(r.TEXT)} chars: {r.TEXT[:70]!r}")
        texts, rows, chars, last = {}, 0, 0, 0
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            next(reader)
            for rec in reader:
                rows += 1
                if len(rec) != 11:
                    fail.append(f"row {rows}: {len(rec)} fields")
                    break
                rid = int(rec[0])
                if rid != last + 1:
                    fail.append(f"ROW_ID {rid} after {last}")
                    break
                last = rid
                chars += len(rec[10])
                if rid in wanted:
                    texts[rid] = (rec[2], rec[6], rec[10])
        print(f"NOTEEVENTS: {rows:,} rows, ROW_ID 1..{last:,}, {chars:,} TEXT characters (mean {chars / max(rows, 1):.0f})")

        bad = 0
        for hadm, note, a in anns:
            h, cat, text = texts.get(note, (None, None, ""))
            piece = text[a["begin"]:a["end"]]
            ok = (h == str(hadm) and cat == "Discharge summary" and 0 <= a["begin"] < a["end"] <= len(text)
                  and piece in phrases[a["code"]]
                  and (a["begin"] == 0 or text[a["begin"] - 1].isspace()) and (a["end"] == len(text) or text[a["end"]] in " \n,."))
            bad += not ok
        print(f"MDACE annotations checked against the CSV TEXT: {len(anns) - bad}/{len(anns)} slice their phrase")
        if bad:
            fail.append(f"{bad} annotations off")
        for hadm, note, a in random.Random(args.seed).sample(anns, min(args.samples, len(anns))):
            h, cat, text = texts[note]
            print(f"  chart {hadm} note ROW_ID {note} (HADM_ID {h}, {cat}, {len(text)} chars) {a['code']} [{a['begin']}:{a['end']}] = {text[a['begin']:a['end']]!r}"
                  f"  context {text[max(0, a['begin'] - 25):a['end'] + 25]!r}")
    else:
        print("no NOTEEVENTS.csv.gz (--only mimic?)")
    print("OK" if not fail else f"FAILED: {fail}")
    sys.exit(1 if fail else 0)


if __name__ == "__main__":
    main()
