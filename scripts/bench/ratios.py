#!/usr/bin/env python3
"""Turns the runs of scripts/bench/compare.sh or scripts/gpu-bench.sh into a side-by-side table
(markdown, on stdout) and optionally one JSON document.

Reads a work folder in which scripts/bench/cases.sh left, per run (one framework, one case):
  NN.<framework>.cmd   the case name, then the command line, one argument per line
  NN.<framework>.out   stdout: the JSON line(s) the benchmark printed
  NN.<framework>.err   stderr
  NN.<framework>.rc    exit status and wall milliseconds
where <framework> is icdbench or pytorch.

Ratios are PyTorch / icdbench: time ratio > 1 means icdbench is faster, memory ratio > 1 means
icdbench needs less memory. A run that timed out or failed shows its status instead of numbers,
and its stderr tail goes into the JSON document.

Usage: ratios.py WORK [--json OUT] [--meta KEY=VALUE ...]
Standard library only: it runs under any python3.
"""

import argparse
import json
import sys
from pathlib import Path

FRAMEWORKS = ("icdbench", "pytorch")
STDERR_TAIL = 4000  # characters of stderr kept for a run that did not succeed


def read_run(cmd_path):
    """One run's record: its case, command, status, timing and the JSON lines it printed."""
    stem = str(cmd_path)[: -len(".cmd")]
    index, framework = Path(stem).name.split(".", 1)
    name, *command = cmd_path.read_text().splitlines()
    out = Path(stem + ".out").read_text(errors="replace") if Path(stem + ".out").exists() else ""
    err = Path(stem + ".err").read_text(errors="replace") if Path(stem + ".err").exists() else ""
    rc_text = Path(stem + ".rc").read_text().split() if Path(stem + ".rc").exists() else []
    rc = int(rc_text[0]) if rc_text else None
    wall = int(rc_text[1]) / 1000 if len(rc_text) > 1 else None

    lines = []
    for raw in out.splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                pass
    line = next((x for x in lines if x.get("case") == name), None)
    if rc is None:
        status = "skipped"  # gpu-bench.sh ran out of its time budget before this run
    elif rc in (124, 137):  # timeout's exit status, and SIGKILL after --kill-after
        status = "timeout"
    elif rc != 0:
        status = "failed"
    elif line is None:
        printed = ", ".join(sorted({str(x.get("case")) for x in lines})) or "no JSON line"
        status = "no_result"
        err += f"\n[ratios] expected a line for case {name}; printed: {printed}"
    else:
        status = "ok"
    return dict(
        index=int(index), case=name, framework=framework, status=status, exit_code=rc,
        wall_seconds=wall, command=command, line=line, lines=lines,
        stderr_tail=None if status == "ok" else err[-STDERR_TAIL:],
    )


def number_or_text(value):
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def ratio(num, den):
    return round(num / den, 3) if num is not None and den else None


def ratio_rows(runs):
    """One row per case, in the order the cases ran."""
    by_case = {}
    for run in sorted(runs, key=lambda r: r["index"]):
        by_case.setdefault(run["case"], {})[run["framework"]] = run
    rows = []
    for case, sides in by_case.items():
        row = {"case": case}
        for fw in FRAMEWORKS:
            run = sides.get(fw)
            line = (run or {}).get("line") or {}
            row[f"{fw}_status"] = run["status"] if run else "skipped"
            row[f"{fw}_seconds"] = line.get("seconds_median")
            row[f"{fw}_tokens_per_second"] = line.get("tokens_per_second")
            row[f"{fw}_peak_bytes"] = line.get("peak_memory_bytes")
            row[f"{fw}_mfu"] = line.get("mfu")
        row["time_ratio"] = ratio(row["pytorch_seconds"], row["icdbench_seconds"])
        row["memory_ratio"] = ratio(row["pytorch_peak_bytes"], row["icdbench_peak_bytes"])
        rows.append(row)
    return rows


def secs(v):
    return f"{v:.4f}"


def mb(v):
    return f"{v / 1e6:,.0f}"


def pct(v):
    return f"{100 * v:.1f}%"


def cell(row, fw, key, fmt):
    value = row[f"{fw}_{key}"]
    if value is not None:
        return fmt(value)
    return row[f"{fw}_status"] if row[f"{fw}_status"] != "ok" else "–"


def table(rows):
    """The markdown table: times, ratios, peak memory; MFU columns when either side reports one."""
    with_mfu = any(r["icdbench_mfu"] is not None or r["pytorch_mfu"] is not None for r in rows)
    head = ["case", "icdbench s", "PyTorch s", "PyTorch/icdbench",
            "icdbench peak MB", "PyTorch peak MB", "memory PyTorch/icdbench"]
    if with_mfu:
        head += ["icdbench MFU", "PyTorch MFU"]
    out = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in rows:
        cells = [r["case"], cell(r, "icdbench", "seconds", secs), cell(r, "pytorch", "seconds", secs),
                 "–" if r["time_ratio"] is None else f"{r['time_ratio']:.2f}",
                 cell(r, "icdbench", "peak_bytes", mb), cell(r, "pytorch", "peak_bytes", mb),
                 "–" if r["memory_ratio"] is None else f"{r['memory_ratio']:.2f}"]
        if with_mfu:
            cells += [cell(r, "icdbench", "mfu", pct), cell(r, "pytorch", "mfu", pct)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", type=Path)
    ap.add_argument("--json", type=Path, help="write runs, lines and ratio rows as one JSON document")
    ap.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                    help="recorded under 'meta' in the JSON document (device, driver, binary, ...)")
    args = ap.parse_args()

    runs = [read_run(p) for p in sorted(args.work.glob("*.cmd"))]
    if not runs:
        sys.exit(f"no runs in {args.work}")
    rows = ratio_rows(runs)
    print(table(rows))
    failed = [r for r in runs if r["status"] != "ok"]
    for r in failed:
        last = (r["stderr_tail"] or "").strip().splitlines()[-1:] or [""]
        exit_code = "" if r["exit_code"] is None else f" (exit {r['exit_code']})"
        print(f"{r['framework']} {r['case']}: {r['status']}{exit_code} {last[0]}".rstrip())

    if args.json:
        meta = {k: number_or_text(v) for k, v in (kv.split("=", 1) for kv in args.meta)}
        doc = {
            "meta": meta,
            "ratios": rows,
            "runs": [{k: r[k] for k in ("case", "framework", "status", "exit_code", "wall_seconds",
                                         "command", "stderr_tail")} for r in runs],
            "lines": [x for r in sorted(runs, key=lambda r: r["index"]) for x in r["lines"]],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
