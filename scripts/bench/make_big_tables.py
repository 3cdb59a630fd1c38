#!/usr/bin/env python3
"""Writes two LARGE synthetic tables, laid out like the real ones, to measure icdbench's
memory and load time on real-sized data (the output is never committed):

    NOTEEVENTS.csv.gz               MIMIC-III NOTEEVENTS (11 columns, ROW_ID 1..N, multi-line TEXT
                                    with commas and quotes; ~2,000 characters a note by default)
    MDACE/data/Inpatient/ICD-10/1.0 302 MDACE chart JSON files whose notes are "Discharge summary"
                                    rows of the CSV, spread over the whole file, with evidence
                                    spans at real character offsets of those notes' TEXT
    MDACE/splits/Inpatient/         MDace-ev-{train,val,test}.csv: one hadm_id a line (181/60/61)
    mimiciv_icd10.feather           Edin et al.'s prepared MIMIC-IV ICD-10 table: the columns,
                                    order and Arrow types of tests/fixtures/mimic/
    mimiciv_icd10_split.feather     _id, split (train/val/test, ~73/11/16 % of subjects)
    mdace.toml, mimic.toml,         experiments reading them ([[baselines]] dictionary)
    mimic-mdace.toml
    manifest.json                   arguments, counts, sizes and timings of the run

Everything is drawn from one seeded numpy Generator, so the same arguments give the same
bytes. Codes are real (datasets/icd10cm FY2026 billable rows, datasets/icd10pcs); the text is
words sampled from a vocabulary made of those tables' descriptions plus common clinical words.
NOTEEVENTS is written in chunks (never held whole in memory), gzip level 1. The MIMIC-IV table
is written with DataFrame.to_feather (pyarrow, LZ4), as Edin et al.'s script writes it.

Run it through make-big-tables.sh, which uses the pinned venv of make_mimic_fixture.sh.
"""

import argparse
import csv
import gzip
import io
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as pa_feather

ROOT = Path(__file__).resolve().parents[2]
ICD10CM_TABLE = ROOT / "datasets" / "icd10cm" / "icd10cm-2026.tsv.gz"
ICD10PCS_TABLE = ROOT / "datasets" / "icd10pcs" / "icd10pcs-2024.tsv.gz"
FIXTURE_TABLE = ROOT / "tests" / "fixtures" / "mimic" / "mimiciv_icd10.feather"

HEADER = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME", "CATEGORY", "DESCRIPTION", "CGID", "ISERROR", "TEXT"]

# MIMIC-III 1.4 NOTEEVENTS: category, its row count in the real file (sets the share), the mean
# TEXT length here in characters before scaling to --note-chars (real discharge summaries are
# longer; lengths are clipped to 200..6000), whether CHARTTIME / STORETIME / CGID are filled,
# and DESCRIPTION values.
CATEGORIES = [
    ("Nursing/other", 822497, 1500, True, True, ["Report"]),
    ("Radiology", 522279, 2200, True, False, ["CHEST (PORTABLE AP)", "CT HEAD W/O CONTRAST", "CHEST (PA & LAT)", "CT ABDOMEN W/CONTRAST", "MR HEAD W & W/O CONTRAST"]),
    ("Nursing", 223556, 2600, True, True, ["Nursing Progress Note", "Nursing Transfer Note", "Generic Note"]),
    ("ECG", 209051, 300, False, False, ["Report"]),
    ("Physician ", 141624, 5000, True, True, ["Physician Resident Progress Note", "Intensivist Note", "Physician Attending Admission Note"]),
    ("Discharge summary", 59652, 5000, False, False, ["Report", "Report", "Report", "Addendum"]),
    ("Echo", 45794, 2500, True, False, ["Report"]),
    ("Respiratory ", 31739, 1200, True, True, ["Respiratory Care Shift Note"]),
    ("Nutrition", 9418, 2000, True, True, ["Nutrition"]),
    ("General", 8301, 2000, True, True, ["Generic Note"]),
    ("Rehab Services", 5431, 2000, True, True, ["Physical Therapy Progress Note"]),
    ("Social Work", 2670, 2000, True, True, ["Social Work Progress Note"]),
    ("Case Management ", 967, 2000, True, True, ["Case Management Initial Note"]),
    ("Pharmacy", 103, 2000, True, True, ["Pharmacy Note"]),
    ("Consult", 98, 2000, True, True, ["Consult Note"]),
]
DS = next(i for i, c in enumerate(CATEGORIES) if c[0] == "Discharge summary")
MIN_CHARS, MAX_CHARS = 200, 6000
# Rows drawn at a time. Part of the output's identity: the draws come chunk by chunk.
NOTE_CHUNK, MIMIC_CHUNK = 20_000, 5_000
REAL_NOTEEVENTS_ROWS, REAL_NOTEEVENTS_ADMISSIONS = 2083180, 58976

# MDACE: codes the synthetic coders annotate, with the phrase put into the note as evidence.
MDACE_CODES = [
    ("I10", "ICD-10-CM", "Essential (primary) hypertension", ["hypertension", "HTN", "essential hypertension"]),
    ("E11.9", "ICD-10-CM", "Type 2 diabetes mellitus without complications", ["type 2 diabetes mellitus", "DM2", "diabetes"]),
    ("N17.9", "ICD-10-CM", "Acute kidney failure, unspecified", ["acute kidney injury", "AKI", "acute renal failure"]),
    ("J18.9", "ICD-10-CM", "Pneumonia, unspecified organism", ["pneumonia", "PNA", "right lower lobe pneumonia"]),
    ("E78.5", "ICD-10-CM", "Hyperlipidemia, unspecified", ["hyperlipidemia", "HLD", "dyslipidemia"]),
    ("Z66", "ICD-10-CM", "Do not resuscitate", ["DNR", "DNR/DNI", "do not resuscitate"]),
    ("5A1935Z", "ICD-10-PCS", "Respiratory Ventilation, Less than 24 Consecutive Hours", ["intubated", "mechanical ventilation"]),
]
MDACE_CHARTS = (181, 60, 61)  # train, val, test: MDACE's Inpatient ICD-10 evidence splits

# Words of clinical notes that code descriptions lack; the most frequent ranks.
COMMON = """the of and to a in with was on for is no at as by he she patient pt his her were be
this that from not which or had has are an there also noted given seen left right without
history denies reports per well stable continue plan follow up today overnight admitted
discharged transferred floor icu status post fever pain chest shortness breath cough nausea
vomiting diarrhea abdominal tenderness edema bilateral lower upper extremity lungs clear
auscultation heart regular rate rhythm murmurs rubs gallops soft nontender nondistended bowel
sounds alert oriented times three neuro intact labs cultures pending blood urine sputum imaging
ct mri ultrasound xray cxr ekg echo ef normal sinus tachycardia bradycardia afib hypotension
hypoxia saturation oxygen nasal cannula liters room air ventilator extubated sedation propofol
fentanyl heparin insulin sliding scale metoprolol lisinopril furosemide lasix vancomycin
zosyn ceftriaxone levofloxacin tylenol morphine dilaudid iv po prn daily bid tid qid mg mcg ml
units dose increased decreased held restarted home medications allergies family social tobacco
alcohol drugs married lives wife husband daughter son daughter physical exam vitals bp hr rr
temp weight height general appearance heent neck cardiovascular respiratory abdomen
extremities skin neurologic assessment impression findings comparison technique indication
reason examination study contrast portable view single frontal lateral unchanged prior
interval improved worsening new small large moderate mild severe acute chronic likely possible
consistent evidence effusion consolidation atelectasis opacity pneumothorax cardiomegaly
catheter tube line tip terminates svc et ng foley drain wound dressing dry intact
""".split()
# Tokens with digits or punctuation (de-identification brackets, vitals, doses) for NOTEEVENTS.
NOTE_EXTRA = ["[**Hospital1 18**]", "[**Known lastname **]", "[**First Name (Titles) **]", "[**2151-7-16**]", "120/80", "98.6", "5mg", "q6h",
              "p.o.", "b.i.d.", "O2", "4L", "100%", "s/p", "h/o", "c/o", "+BS", "1+", "2L", "NC", "HR 88", "RR 18", "BP 132/74", "Cr 1.2", "K 4.1"]
# Alphanumeric tokens that Edin's TextPreprocessor keeps (a number stays only inside a word).
EDIN_EXTRA = ["o2", "4l", "2l", "b12", "d5w", "t4", "a1c", "k2", "x3", "s1", "s2", "l5", "c5", "t12", "ns1"]


def read_icd(path):
    """(code, billable, description) rows of a datasets/icd10* table: gzip TSV, '#' header lines."""
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            out.append((cols[0], cols[1] == "1", cols[2] if len(cols) > 2 else ""))
    return out


def vocabulary(cm, pcs, size):
    """COMMON first, then the most frequent lower-case words of the code descriptions (ties by word)."""
    counts = {}
    for _, billable, desc in cm + pcs:
        for w in re.findall(r"[a-z]+", desc.lower()):
            if len(w) >= 2:
                counts[w] = counts.get(w, 0) + 1
    seen, words = set(), []
    for w in COMMON:
        if w not in seen:
            seen.add(w)
            words.append(w)
    for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(words) >= size:
            break
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def zipf(n, s=1.0, shift=2.0):
    w = 1.0 / (np.arange(n, dtype=np.float64) + shift) ** s
    return w / w.sum()


def human(n):
    for unit in ["B", "KiB", "MiB", "GiB"]:
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def log(msg):
    print(f"[big-tables] {time.strftime('%H:%M:%S')} {msg}", flush=True)


# ------------------------------------------------------------------------------- NOTEEVENTS

def noteevents(args, rng, cm, pcs, out):
    """Writes NOTEEVENTS.csv.gz in chunks and the MDACE folder; returns facts for the manifest."""
    n = args.noteevents_rows
    ncat = len(CATEGORIES)
    share = np.array([c[1] for c in CATEGORIES], dtype=np.float64)
    share /= share.sum()
    cat = rng.choice(ncat, size=n, p=share).astype(np.int8)
    # Make sure there are enough discharge summaries for the MDACE charts, also near the end.
    need = sum(MDACE_CHARTS) * 3
    if (cat == DS).sum() < need:
        cat[rng.choice(n, size=min(n, need), replace=False)] = DS
    # Admissions: MIMIC-III's ratio of notes to admissions; hadm_id 6 digits from 100000.
    n_adm = max(sum(MDACE_CHARTS) * 2, round(n * REAL_NOTEEVENTS_ADMISSIONS / REAL_NOTEEVENTS_ROWS))
    # MIMIC-III's ranges: hadm_id 100001..199999, subject_id 2..99999 (wider only past them).
    hadm_ids = 100001 + rng.choice(max(99999, n_adm), size=n_adm, replace=False)
    n_subj = max(1, round(n_adm * 46520 / REAL_NOTEEVENTS_ADMISSIONS))
    subj_ids = 2 + rng.choice(max(99998, n_subj), size=n_subj, replace=False)
    adm_subj = subj_ids[rng.integers(0, n_subj, size=n_adm)]
    adm_day = rng.integers(0, 100 * 365, size=n_adm)  # days after 2100-01-01
    row_adm = rng.integers(0, n_adm, size=n).astype(np.int32)
    # Some Radiology / ECG / Echo notes are outpatient: no HADM_ID (the SUBJECT_ID stays).
    outpatient = np.isin(cat, [1, 3, 6]) & (rng.random(n) < 0.12)
    # TEXT lengths by category, scaled so that the mean over the category mix is --note-chars.
    means = np.array([c[2] for c in CATEGORIES], dtype=np.float64)
    means *= args.note_chars / float((share * means).sum())
    sigma = 0.55
    length = np.exp(rng.normal(np.log(means[cat]) - sigma * sigma / 2, sigma))
    length = np.clip(length, MIN_CHARS, MAX_CHARS)

    # Tokens: a word with what follows it (space, newline, comma, quotes, capital, period).
    words = vocabulary(cm, pcs, args.vocab) + NOTE_EXTRA
    V = len(words)
    pw = zipf(V)
    variants = [
        (0.800, lambda w: w + " "),
        (0.060, lambda w: w + "\n"),
        (0.050, lambda w: w + ", "),
        (0.012, lambda w: '"' + w + '" '),
        (0.045, lambda w: w[:1].upper() + w[1:] + " "),
        (0.028, lambda w: w + ". "),
        (0.005, lambda w: w.upper() + ":\n"),
    ]
    pv = np.array([p for p, _ in variants])
    pv /= pv.sum()
    tokens = np.array([f(w) for _, f in variants for w in words], dtype=object)
    tok_len = np.array([len(t) for t in tokens], dtype=np.float64)
    mean_tok = float((pv[:, None] * tok_len.reshape(len(variants), V) * pw[None, :]).sum())
    nwords = np.maximum(3, np.round(length / mean_tok)).astype(np.int64)

    # MDACE charts: discharge summaries evenly spaced over the file (the last one included),
    # one admission per chart; each chart holds its admission's discharge summaries (at most 3).
    ds_rows = np.flatnonzero((cat == DS) & ~outpatient)
    n_charts = sum(MDACE_CHARTS)
    picks = np.unique(np.round(np.linspace(0, len(ds_rows) - 1, n_charts)).astype(np.int64))
    chosen, used = [], set()
    for p in picks.tolist():
        q = p
        while q < len(ds_rows) and int(row_adm[ds_rows[q]]) in used:
            q += 1
        if q == len(ds_rows):
            q = p
            while q >= 0 and int(row_adm[ds_rows[q]]) in used:
                q -= 1
        used.add(int(row_adm[ds_rows[q]]))
        chosen.append(int(row_adm[ds_rows[q]]))
    while len(chosen) < n_charts:  # only when picks collided (tiny files)
        a = int(row_adm[ds_rows[rng.integers(0, len(ds_rows))]])
        if a not in used:
            used.add(a)
            chosen.append(a)
    chart_adm = set(chosen)
    ds_of_adm = {}
    for r in ds_rows.tolist():
        a = int(row_adm[r])
        if a in chart_adm and len(ds_of_adm.setdefault(a, [])) < 3:
            ds_of_adm[a].append(r)
    annotated = {r: a for a, rs in ds_of_adm.items() for r in rs}
    # Annotated notes need room for their evidence: at least 300 words.
    for r in annotated:
        nwords[r] = max(nwords[r], 300)
    annotations = {}  # row -> [(begin, end, code index, phrase)]

    path = out / "NOTEEVENTS.csv.gz"
    tmp = path.with_suffix(".gz.tmp")
    base_day = np.datetime64("2100-01-01", "D")
    chunk = NOTE_CHUNK
    total_chars = 0
    cats_count = np.bincount(cat, minlength=ncat)
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", compresslevel=args.gzip_level, fileobj=raw, mtime=0) as gz:
        gz.write((",".join(f'"{h}"' for h in HEADER) + "\n").encode("ascii"))
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            t0 = time.time()
            nw = nwords[start:stop]
            total = int(nw.sum())
            ids = rng.choice(len(variants), size=total, p=pv) * V + rng.choice(V, size=total, p=pw)
            toks = tokens[ids].tolist()
            ends = np.cumsum(nw).tolist()
            # Dates: per admission, notes within 10 days of its start; times to the minute.
            rows = np.arange(start, stop)
            adm = row_adm[start:stop]
            day = base_day + (adm_day[adm] + rng.integers(0, 10, size=stop - start))
            minute = rng.integers(0, 24 * 60, size=stop - start)
            store = minute + rng.integers(5, 240, size=stop - start)
            dstr = np.datetime_as_string(day, unit="D").tolist()
            ctime = np.datetime_as_string(day.astype("datetime64[m]") + minute, unit="s").tolist()
            stime = np.datetime_as_string(day.astype("datetime64[m]") + store, unit="s").tolist()
            cgid = rng.integers(14000, 21600, size=stop - start).tolist()
            iserr = (rng.random(stop - start) < 0.0004).tolist()
            desc_pick = rng.integers(0, 1 << 30, size=stop - start).tolist()
            buf = io.StringIO()
            w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n") if args.quoting == "all" else None
            a0 = 0
            for i in range(stop - start):
                r = start + i
                c = int(cat[r])
                name, _, _, timed, staffed, descs = CATEGORIES[c]
                a1 = ends[i]
                desc = descs[desc_pick[i] % len(descs)]
                if c == DS:
                    head = f"Admission Date:  [**{dstr[i]}**]              Discharge Date:   [**{dstr[i]}**]\n\nService: MEDICINE\n\n"
                elif c == 1:
                    head = f"[**{dstr[i]}**] {ctime[i][11:16]}\n     {desc}   Clip # [**Clip Number (Radiology) {10000 + r % 90000}**]\n     Reason: "
                else:
                    head = ""
                if r in annotated:
                    text = head + evidence(rng, toks[a0:a1], len(head), annotations.setdefault(r, []))
                else:
                    text = head + "".join(toks[a0:a1]).rstrip()
                a0 = a1
                total_chars += len(text)
                a = int(adm[i])
                hadm = "" if outpatient[r] else str(hadm_ids[a])
                ct = ctime[i].replace("T", " ") if timed else ""
                st = stime[i].replace("T", " ") if staffed else ""
                cg = str(cgid[i]) if staffed else ""
                er = "1" if (staffed and iserr[i]) else ""
                if w is not None:
                    w.writerow([r + 1, adm_subj[a], hadm, dstr[i], ct, st, name, desc, cg, er, text])
                else:
                    # PhysioNet's own quoting: text columns quoted, numbers, dates and times bare.
                    buf.write(f'{r + 1},{adm_subj[a]},{hadm},{dstr[i]},{ct},{st},"{name}","{desc}",{cg},{er},"{text.replace(chr(34), chr(34) * 2)}"\n')
            gz.write(buf.getvalue().encode("ascii"))
            log(f"NOTEEVENTS rows {stop:,}/{n:,} ({total_chars / 1e9:.2f} GB of TEXT so far, {time.time() - t0:.1f} s for this chunk)")
    os.replace(tmp, path)

    # The MDACE folder.
    data = out / "MDACE" / "data" / "Inpatient" / "ICD-10" / "1.0"
    splits = out / "MDACE" / "splits" / "Inpatient"
    data.mkdir(parents=True, exist_ok=True)
    splits.mkdir(parents=True, exist_ok=True)
    for old in data.glob("*.json"):
        old.unlink()
    n_ann = 0
    for a in sorted(ds_of_adm, key=lambda a: hadm_ids[a]):
        notes = []
        for r in ds_of_adm[a]:
            anns = [{"begin": b, "end": e, "code": MDACE_CODES[k][0], "code_system": MDACE_CODES[k][1], "description": MDACE_CODES[k][2], "type": "Human"}
                    for b, e, k, _ in sorted(annotations[r])]
            n_ann += len(anns)
            notes.append({"note_id": r + 1, "category": "Discharge summary", "description": "Report", "annotations": anns})
        chart = {"hadm_id": int(hadm_ids[a]), "comment": "", "notes": notes}
        (data / f"{hadm_ids[a]}-ICD-10.json").write_text(json.dumps(chart) + "\n")
    order = [int(hadm_ids[a]) for a in chosen]
    order = [order[i] for i in rng.permutation(len(order))]
    ntr, nva, _ = MDACE_CHARTS
    for name, ids in [("train", order[:ntr]), ("val", order[ntr:ntr + nva]), ("test", order[ntr + nva:])]:
        (splits / f"MDace-ev-{name}.csv").write_text("".join(f"{i}\n" for i in ids))
    # Where the annotated notes sit in the file, for the manifest (and a quick look).
    rows_annotated = sorted(r + 1 for r in annotated)
    return {
        "noteevents_rows": n,
        "noteevents_text_chars": total_chars,
        "noteevents_mean_text_chars": round(total_chars / n, 1),
        "noteevents_categories": {CATEGORIES[i][0]: int(cats_count[i]) for i in range(ncat)},
        "noteevents_admissions": int(n_adm),
        "mdace_charts": len(ds_of_adm),
        "mdace_notes": len(annotated),
        "mdace_annotations": n_ann,
        "mdace_first_last_row_id": [rows_annotated[0], rows_annotated[-1]],
        "mdace_sample": [{"row_id": r + 1, "begin": b, "end": e, "code": MDACE_CODES[k][0], "text": t}
                         for r in sorted(annotations)[:: max(1, len(annotations) // 5)] for b, e, k, t in annotations[r][:1]],
    }


def evidence(rng, toks, offset, out):
    """Joins a note's tokens with 2-8 code phrases put in place of words; records their offsets."""
    k = int(rng.integers(2, 9))
    where = np.sort(rng.choice(np.arange(5, len(toks) - 1), size=k, replace=False)).tolist()
    toks = list(toks)
    for pos in where:
        code = int(rng.integers(0, len(MDACE_CODES)))
        phrases = MDACE_CODES[code][3]
        phrase = phrases[int(rng.integers(0, len(phrases)))]
        toks[pos] = phrase + " "
        out.append((pos, code, phrase))
    lens = np.cumsum([0] + [len(t) for t in toks]).tolist()
    spans = [(offset + lens[pos], offset + lens[pos] + len(phrase), code, phrase) for pos, code, phrase in out]
    out[:] = spans
    return "".join(toks).rstrip()


# ------------------------------------------------------------------------------- MIMIC-IV

def mimiciv(args, rng, cm, pcs, out):
    n = args.mimic_rows
    # Codes: the MDACE codes first (most frequent), then a seeded draw of billable FY2026
    # ICD-10-CM codes, written as Edin's reformat_icd10 writes them (3 characters -> "I10.").
    billable = sorted(c for c, b, _ in cm if b)
    fixed = [c for c, s, _, _ in MDACE_CODES if s == "ICD-10-CM"]
    rest = [c for c in billable if c not in fixed]
    diag_pool = fixed + [rest[i] for i in rng.choice(len(rest), size=args.diag_codes - len(fixed), replace=False)]
    proc_all = sorted(c for c, _, _ in pcs)
    proc_fixed = ["5A1935Z", "0BH17EZ", "02HV33Z", "5A1D70Z", "3E0G76Z"]
    proc_fixed = [c for c in proc_fixed if c in set(proc_all)]
    proc_rest = [c for c in proc_all if c not in proc_fixed]
    proc_pool = proc_fixed + [proc_rest[i] for i in rng.choice(len(proc_rest), size=args.proc_codes - len(proc_fixed), replace=False)]
    edin = lambda c: c if "." in c else c + "."  # noqa: E731  billable 3-character codes carry no dot in the table
    diag_str = np.array([edin(c) for c in diag_pool], dtype=object)
    proc_str = np.array(proc_pool, dtype=object)
    # Zipf weights by pool rank; then re-index by string order so np.unique sorts like Python.
    dw, pw_ = zipf(len(diag_pool), 1.0, 3.0), zipf(len(proc_pool), 1.0, 3.0)
    dord, pord = np.argsort(diag_str), np.argsort(proc_str)
    drank, prank = np.empty_like(dord), np.empty_like(pord)
    drank[dord], prank[pord] = np.arange(len(dord)), np.arange(len(pord))
    diag_sorted, proc_sorted = diag_str[dord], proc_str[pord]

    # Subjects and admissions, in the order of MIMIC-IV-Note's discharge.csv.gz (by note_id).
    n_subj = max(1, round(n * 0.54))
    subj = 10000000 + np.sort(rng.choice(9_999_999, size=n_subj, replace=False))
    row_subj = np.sort(np.concatenate([np.arange(n_subj), rng.integers(0, n_subj, size=max(0, n - n_subj))]))[:n]
    first_seq = rng.integers(2, 30, size=n_subj)
    seq = np.zeros(n, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(row_subj)) + 1]
    for s, e in zip(starts.tolist(), np.r_[starts[1:], n].tolist()):
        seq[s:e] = first_seq[row_subj[s]] + np.arange(e - s) * rng.integers(1, 4)
    hadm = 20000000 + rng.choice(9_999_999, size=n, replace=False)
    subj_day = rng.integers(40 * 365, 120 * 365, size=n_subj)  # after 2100-01-01
    day = np.datetime64("2100-01-01", "D") + subj_day[row_subj] + (seq - first_seq[row_subj]) * 37
    chart = [s + " 00:00:00" for s in np.datetime_as_string(day, unit="D").tolist()]
    store = [s.replace("T", " ") for s in np.datetime_as_string(day.astype("datetime64[m]") + rng.integers(8 * 60, 24 * 60, size=n), unit="s").tolist()]
    subject_ids = subj[row_subj]

    # Text: lower-case words, no punctuation, as Edin's TextPreprocessor leaves it.
    words = np.array([w for w in vocabulary(cm, pcs, args.vocab) if w.isalpha()] + EDIN_EXTRA, dtype=object)
    wp = zipf(len(words))
    nwords = rng.integers(max(1, args.words // 2), args.words + args.words // 2 + 1, size=n)
    texts, diag, proc = [], [], []
    chunk = MIMIC_CHUNK
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        t0 = time.time()
        nw = nwords[start:stop]
        toks = words[rng.choice(len(words), size=int(nw.sum()), p=wp)].tolist()
        a0 = 0
        for k in np.cumsum(nw).tolist():
            texts.append(" ".join(toks[a0:k]))
            a0 = k
        nd = np.clip(1 + rng.poisson(args.codes - 3.5, size=stop - start), 1, 60)
        np_ = np.clip(rng.poisson(2.5, size=stop - start), 0, 25)
        dd = drank[rng.choice(len(diag_pool), size=int(nd.sum()), p=dw)]
        pp = prank[rng.choice(len(proc_pool), size=int(np_.sum()), p=pw_)]
        d0 = p0 = 0
        for a, b in zip(np.cumsum(nd).tolist(), np.cumsum(np_).tolist()):
            diag.append(diag_sorted[np.unique(dd[d0:a])].tolist())
            proc.append(proc_sorted[np.unique(pp[p0:b])].tolist())
            d0, p0 = a, b
        log(f"MIMIC-IV rows {stop:,}/{n:,} ({time.time() - t0:.1f} s for this chunk)")

    # Edin's filter_codes(MIN_TARGET_COUNT=10) per column, then target = proc + diag, non-empty.
    for col in (diag, proc):
        count = {}
        for codes in col:
            for c in codes:
                count[c] = count.get(c, 0) + 1
        rare = {c for c, k in count.items() if k < 10}
        if rare:
            for i, codes in enumerate(col):
                if any(c in rare for c in codes):
                    col[i] = [c for c in codes if c not in rare]
    target = [p + d for p, d in zip(proc, diag)]
    keep = np.array([len(t) > 0 for t in target])
    df = pd.DataFrame({
        "note_id": [f"{s}-DS-{q}" for s, q in zip(subject_ids.tolist(), seq.tolist())],
        "subject_id": subject_ids.astype(np.int64),
        "_id": hadm.astype(np.int64),
        "note_type": "DS",
        "note_seq": seq,
        "charttime": chart,
        "storetime": store,
        "text": texts,
        "icd10_proc": proc,
        "icd10_diag": diag,
        "target": target,
        "num_words": nwords.astype(np.int64),
        "num_targets": np.array([len(t) for t in target], dtype=np.int64),
    })
    del texts, diag, proc, target
    if not keep.all():
        df = df[keep].reset_index(drop=True)
    t0 = time.time()
    df.to_feather(out / "mimiciv_icd10.feather")
    log(f"mimiciv_icd10.feather written ({time.time() - t0:.1f} s)")

    # Split by subject, ~73/11/16 % (Edin use iterative stratification; a seeded draw here).
    u = rng.random(n_subj)
    split_of_subj = np.where(u < 0.73, "train", np.where(u < 0.84, "val", "test"))
    split = pd.DataFrame({"_id": df["_id"].to_numpy(), "split": split_of_subj[np.searchsorted(subj, df["subject_id"].to_numpy())]})
    split.to_feather(out / "mimiciv_icd10_split.feather")
    facts = {
        "mimic_rows": int(len(df)),
        "mimic_subjects": int(df["subject_id"].nunique()),
        "mimic_sum_num_words": int(df["num_words"].sum()),
        "mimic_text_chars": int(df["text"].str.len().sum()),
        "mimic_mean_num_targets": round(float(df["num_targets"].mean()), 2),
        "mimic_distinct_codes": {"icd10_diag": len({c for x in df["icd10_diag"] for c in x}), "icd10_proc": len({c for x in df["icd10_proc"] for c in x})},
        "mimic_split_rows": {k: int(v) for k, v in split["split"].value_counts().items()},
    }
    return facts


# ------------------------------------------------------------------------------- experiments

def experiments(out):
    mdace = """kind = "mdace"
annotations = "MDACE/data/Inpatient/ICD-10/1.0"
notes = "NOTEEVENTS.csv.gz"
train_ids = "MDACE/splits/Inpatient/MDace-ev-train.csv"
val_ids = "MDACE/splits/Inpatient/MDace-ev-val.csv"
test_ids = "MDACE/splits/Inpatient/MDace-ev-test.csv"
"""
    mimic = """kind = "mimic"
table = "mimiciv_icd10.feather"
splits = "mimiciv_icd10_split.feather"
"""
    head = "# Written by scripts/bench/make_big_tables.py: synthetic data of real size, for memory and load-time measurements.\n"
    tail = "\n[[baselines]]\nkind = \"dictionary\"\n"
    (out / "mdace.toml").write_text(f'{head}[experiment]\nname = "big-mdace"\n\n[data.source]\n{mdace}{tail}')
    (out / "mimic.toml").write_text(f'{head}[experiment]\nname = "big-mimic"\n\n[data.source]\n{mimic}{tail}')
    both = mdace.replace('kind = "mdace"\n', "")
    (out / "mimic-mdace.toml").write_text(f'{head}# As the paper experiments read them: the MIMIC-IV table with MDACE\'s training notes beside it.\n'
                                          f'[experiment]\nname = "big-mimic-mdace"\n\n[data.source]\n{mimic}\n[data.source.mdace]\n{both}{tail}')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--noteevents-rows", type=int, default=2_000_000)
    ap.add_argument("--mimic-rows", type=int, default=122_279)
    ap.add_argument("--words", type=int, default=1_500, help="mean words a MIMIC-IV row (uniform in words/2 .. 3*words/2)")
    ap.add_argument("--seed", type=int, default=2023)
    ap.add_argument("--note-chars", type=int, default=2_000, help="mean NOTEEVENTS TEXT length in characters (each note 200..6000)")
    ap.add_argument("--codes", type=float, default=15.0, help="mean codes a MIMIC-IV row (diagnoses + procedures)")
    ap.add_argument("--diag-codes", type=int, default=3_000, help="distinct ICD-10-CM codes to draw from")
    ap.add_argument("--proc-codes", type=int, default=1_000, help="distinct ICD-10-PCS codes to draw from")
    ap.add_argument("--vocab", type=int, default=6_000, help="words in the text vocabulary")
    ap.add_argument("--quoting", choices=["physionet", "all"], default="physionet",
                    help="physionet: quote the text columns only, as MIMIC-III's NOTEEVENTS.csv does; all: csv.QUOTE_ALL")
    ap.add_argument("--gzip-level", type=int, default=1)
    ap.add_argument("--only", choices=["all", "noteevents", "mimic"], default="all")
    ap.add_argument("--threads", type=int, default=1, help="Arrow threads (pyarrow's pool)")
    args = ap.parse_args()
    if args.noteevents_rows < 10 * sum(MDACE_CHARTS):
        ap.error(f"--noteevents-rows must be at least {10 * sum(MDACE_CHARTS)} to hold {sum(MDACE_CHARTS)} MDACE charts")
    pa.set_cpu_count(max(1, args.threads))
    pa.set_io_thread_count(max(1, args.threads))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    cm, pcs = read_icd(ICD10CM_TABLE), read_icd(ICD10PCS_TABLE)
    facts = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "seconds": {}}
    # Each part draws from its own generator (seed, part), so --only gives the same bytes.
    if args.only in ("all", "noteevents"):
        t0 = time.time()
        facts.update(noteevents(args, np.random.default_rng([args.seed, 1]), cm, pcs, out))
        facts["seconds"]["noteevents_and_mdace"] = round(time.time() - t0, 1)
    if args.only in ("all", "mimic"):
        t0 = time.time()
        facts.update(mimiciv(args, np.random.default_rng([args.seed, 2]), cm, pcs, out))
        facts["seconds"]["mimiciv"] = round(time.time() - t0, 1)
        fixture = pa_feather.read_table(FIXTURE_TABLE).schema
        written = pa.ipc.open_file(out / "mimiciv_icd10.feather").schema
        if not written.remove_metadata().equals(fixture.remove_metadata()):
            sys.exit(f"schema differs from {FIXTURE_TABLE}:\n{written}\nvs\n{fixture}")
    experiments(out)
    facts["seconds"]["total"] = round(time.time() - t_all, 1)
    sizes = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.suffix in (".gz", ".feather", ".toml"):
            sizes[str(p.relative_to(out))] = p.stat().st_size
    mdace_dir = out / "MDACE"
    if mdace_dir.is_dir():
        sizes["MDACE/"] = sum(p.stat().st_size for p in mdace_dir.rglob("*") if p.is_file())
    facts["sizes"] = sizes
    (out / "manifest.json").write_text(json.dumps(facts, indent=1) + "\n")
    for k, v in sizes.items():
        log(f"{k}: {human(v)}")
    log(f"done in {facts['seconds']['total']} s")


if __name__ == "__main__":
    main()
