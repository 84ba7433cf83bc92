"""The robustness matrix: every claim of the book, under many seeds, CPU kernels and
thread counts; writes back/robustness.json (the records) and back/robustness.md (the
page).

    python tools/robustness.py                # the sampled plan (about 40 min, 2 cores)
    python tools/robustness.py --plan full    # every configuration (3 times as long)
    python tools/robustness.py --only attention/multi_head_attention --no-write
    python tools/robustness.py --page-only    # rewrite the page from the records

A *claim* is a sentence of the text about a trained or random outcome, checked in the
notebook by ``seqbook.book.claims.expect``. Each run executes one instructor notebook
(``solutions/``) in a fresh kernel with

- ``SEQBOOK_SEED`` = 0, 1 or 2 (``seqbook.set_seed`` and every seeded generator of the
  book shift by it: other initial weights, batches and toy data);
- ``ATEN_CPU_CAPABILITY`` = ``default`` and every vector kernel this processor can
  dispatch (``avx2``; ``avx512`` where present): other kernels round differently, as
  another machine's processor would;
- ``OMP_NUM_THREADS`` = 1 or 2 (reductions split differently);

and ``SEQBOOK_CLAIMS_MODE=record``, so a failed claim is recorded without stopping the
notebook. The sampled plan runs each notebook once under every kernel x thread
combination, rotating the seed shift with the notebook's position, so that each notebook
sees all three seeds, every kernel and both thread counts (4 runs per notebook where the
processor has AVX2, 6 where it has AVX-512), and the matrix as a whole covers every
(seed, kernel, threads) cell. ``--plan full`` runs all 12 (or 18) per notebook.
One-thread runs go two at a time, two-thread runs alone, so the cores are never shared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECORDS = REPO / "back" / "robustness.json"
PAGE = REPO / "back" / "robustness.md"
SEED_SHIFTS = (0, 1, 2)
THREADS = (1, 2)
NO_GPU = (
    "no GPU run is recorded here yet: none was available when this matrix ran. The "
    "GPU job of `.github/workflows/ci.yml` runs every notebook, and so every claim, "
    "with `REQUIRE_GPU=1` on a self-hosted GPU runner; record its result in the "
    "records' `meta.gpu`."
)

# Executed in a child process whose environment selects the configuration: the kernel
# inherits it. Prints one JSON line: seconds, and the first error if a cell failed.
RUNNER = r"""
import json, sys, time
import nbformat
from nbclient import NotebookClient
path, folder = sys.argv[1], sys.argv[2]
notebook = nbformat.read(path, as_version=4)
client = NotebookClient(notebook, timeout=900, kernel_name="python3", allow_errors=True,
                        resources={"metadata": {"path": folder}})
start = time.perf_counter()
client.execute()
errors = [f"{out.get('ename')}: {out.get('evalue')}"[:400]
          for cell in notebook.cells if cell.cell_type == "code"
          for out in cell.get("outputs", []) if out.get("output_type") == "error"]
print(json.dumps({"seconds": time.perf_counter() - start, "errors": errors}))
"""


def toc_sections() -> list[str]:
    """``part/section`` of every section notebook, in the book's order."""
    found = re.findall(r"file:\s*chapters/([\w/]+)", (REPO / "_toc.yml").read_text())
    return [name for name in found if (REPO / "solutions" / f"{name}.ipynb").exists()]


def cpu_kernels() -> list[str]:
    """``default`` plus every vector kernel this processor can run
    (ATEN_CPU_CAPABILITY)."""
    import torch

    native = torch.backends.cpu.get_cpu_capability().lower()  # e.g. "avx2", "avx512"
    vector = {"avx512": ["avx2", "avx512"], "avx2": ["avx2"]}.get(native, [])
    if not vector and native != "default":
        vector = ["native"]  # another architecture (e.g. Arm): its own vector kernel
    return ["default", *vector]


def plan(sections: list[str], kernels: list[str], full: bool) -> list[dict]:
    runs = []
    for index, section in enumerate(sections):
        combos = list(itertools.product(kernels, THREADS))
        if full:
            configs = [(seed, k, t) for seed in SEED_SHIFTS for k, t in combos]
        else:  # rotate the seed so each notebook sees all three, the book every cell
            configs = [
                (SEED_SHIFTS[(index + j) % len(SEED_SHIFTS)], k, t)
                for j, (k, t) in enumerate(combos)
            ]
        runs += [
            {"section": section, "seed_shift": s, "kernel": k, "threads": t}
            for s, k, t in configs
        ]
    return runs


def execute(run: dict) -> dict:
    notebook = REPO / "solutions" / f"{run['section']}.ipynb"
    with tempfile.TemporaryDirectory() as scratch:
        claims_file = Path(scratch) / "claims.jsonl"
        env = {
            **os.environ,
            "SEQBOOK_SEED": str(run["seed_shift"]),
            "OMP_NUM_THREADS": str(run["threads"]),
            "MKL_NUM_THREADS": str(run["threads"]),
            "SEQBOOK_CLAIMS": str(claims_file),
            "SEQBOOK_CLAIMS_MODE": "record",
            "SEQBOOK_NOTEBOOK": run["section"],
            "PYTHONHASHSEED": "0",
        }
        env.pop("ATEN_CPU_CAPABILITY", None)
        if run["kernel"] != "native":
            env["ATEN_CPU_CAPABILITY"] = run["kernel"]
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", RUNNER, str(notebook), str(notebook.parent)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
        )
        outcome = {"seconds": time.perf_counter() - started, "errors": []}
        if result.returncode != 0:
            outcome["errors"] = [f"runner failed: {result.stderr.strip()[-400:]}"]
        else:
            outcome.update(json.loads(result.stdout.strip().splitlines()[-1]))
        claims = []
        if claims_file.exists():
            claims = [json.loads(line) for line in claims_file.read_text().splitlines()]
    keep = ("name", "value", "comparison", "threshold", "holds", "detail")
    outcome["claims"] = [{k: c[k] for k in keep if k in c} for c in claims]
    return {**run, **outcome}


def run_matrix(runs: list[dict], workers: int) -> list[dict]:
    """One-thread runs ``workers`` at a time, then two-thread runs one at a time."""
    done: list[dict] = []

    def report(result: dict) -> None:
        failed = sum(not c["holds"] for c in result["claims"])
        print(
            f"{result['section']:50} seed+{result['seed_shift']} {result['kernel']:8}"
            f" {result['threads']}t {result['seconds']:6.1f} s  "
            f"{len(result['claims'])} claims, {failed} failed, "
            f"{len(result['errors'])} errors",
            flush=True,
        )
        done.append(result)

    single = [r for r in runs if r["threads"] == 1]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(execute, single):
            report(result)
    for run in (r for r in runs if r["threads"] > 1):
        report(execute(run))
    return done


# ------------------------------------------------------------------------ the page
def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1000 or abs(x) < 0.001:
        return f"{x:.3g}"
    return f"{x:.4g}"


def summarise(results: list[dict]) -> list[dict]:
    """One row per (section, claim): threshold, observed range, margin, runs held."""
    rows: dict[tuple[str, str], dict] = {}
    for result in results:
        for claim in result["claims"]:
            key = (result["section"], claim["name"])
            row = rows.setdefault(
                key,
                {
                    "section": key[0],
                    "name": key[1],
                    "comparison": claim["comparison"],
                    "threshold": claim["threshold"],
                    "values": [],
                    "held": 0,
                    "runs": 0,
                },
            )
            row["values"].append(claim["value"])
            row["runs"] += 1
            row["held"] += bool(claim["holds"])
    for row in rows.values():
        low, high = min(row["values"]), max(row["values"])
        row["min"], row["max"] = low, high
        if row["comparison"] in (">", ">="):
            row["margin"] = low - row["threshold"]
        elif row["comparison"] in ("<", "<="):
            row["margin"] = row["threshold"] - high
        else:
            row["margin"] = None
    return list(rows.values())


def render(data: dict) -> str:
    results, meta = data["results"], data["meta"]
    rows = summarise(results)
    configs = sorted({(r["seed_shift"], r["kernel"], r["threads"]) for r in results})
    failed = [r for r in rows if r["held"] < r["runs"]]
    errored = [r for r in results if r["errors"]]
    sections = list(dict.fromkeys(r["section"] for r in results))
    lines = [
        "# Robustness of the claims",
        "",
        (
            "<!-- Generated by tools/robustness.py from back/robustness.json; "
            "do not edit. -->"
        ),
        "",
        'Every sentence of this book about a trained or random outcome ("two heads '
        'solve the task", "the LSTM bridges a gap of 40 steps") is checked where it '
        "is made, by `seqbook.book.claims.expect`, with a threshold. A claim that held "
        "on one machine only would be no lesson, so `make robustness` runs every "
        "instructor notebook under other random seeds, other CPU kernels and other "
        "thread counts, and records every claim. This page is what it found.",
        "",
        "## How the matrix was run",
        "",
        f"- **Machine**: {meta['cpu']}, {meta['cores']} cores, native CPU kernel "
        f"`{meta['native_kernel']}`; Python {meta['python']}, PyTorch {meta['torch']}; "
        f"{meta['date']}.",
        f"- **Configurations**: seed shifts {', '.join(map(str, meta['seed_shifts']))} "
        f"(`SEQBOOK_SEED`: other initial weights, batches and toy data) x CPU kernels "
        f"{', '.join(f'`{k}`' for k in meta['kernels'])} (`ATEN_CPU_CAPABILITY`: "
        "other kernels round differently, as another processor does) x "
        f"{' or '.join(map(str, meta['threads']))} threads.",
        f"- **Plan**: `{meta['plan']}`. "
        + (
            "Each notebook ran once under every kernel x thread combination, its seed "
            "shift rotated with its position in the book, so each notebook met all "
            "three seeds, every kernel and both thread counts, and the book as a whole "
            "every cell of the matrix."
            if meta["plan"] == "sample"
            else "Each notebook ran under every configuration."
        ),
        f"- **Runs**: {len(results)} notebook runs in {len(configs)} distinct "
        f"configurations, {meta['wall_minutes']:.0f} min of wall-clock time; "
        f"{len(rows)} claims in {len(sections)} notebooks.",
        "- **GPU**: " + meta.get("gpu", NO_GPU),
        "",
        "## Result",
        "",
    ]
    if not failed and not errored:
        lines.append(
            f"Every claim held in every run ({sum(r['runs'] for r in rows)} "
            "checks). The *margin* is how far the worst run stayed from the "
            "threshold, in the claim's own units and as a share of the threshold."
        )
    else:
        lines.append(
            f"{len(failed)} claims failed in at least one run, and "
            f"{len(errored)} runs stopped with an error: see the rows marked "
            "**failed** below."
        )
    for section in sections:
        lines += [
            "",
            f"### `{section}`",
            "",
            "| claim | needs | lowest | highest | margin | held |",
            "|---|---|---|---|---|---|",
        ]
        for row in (r for r in rows if r["section"] == section):
            needs = (
                "true"
                if row["comparison"] == "is"
                else f"{row['comparison']} {_fmt(row['threshold'])}"
            )
            if row["comparison"] == "is":
                low = high = margin = "—"
            else:
                low, high, margin = (
                    _fmt(row["min"]),
                    _fmt(row["max"]),
                    _fmt(row["margin"]),
                )
                if row["threshold"]:
                    margin += f" ({row['margin'] / abs(row['threshold']):.0%})"
            held = f"{row['held']}/{row['runs']}"
            if row["held"] < row["runs"]:
                held += " **failed**"
            name = row["name"].replace("|", "\\|")
            lines.append(f"| {name} | {needs} | {low} | {high} | {margin} | {held} |")
        for result in (r for r in errored if r["section"] == section):
            lines.append(
                f"\nRun seed+{result['seed_shift']}, `{result['kernel']}`, "
                f"{result['threads']} thread(s) stopped: "
                f"`{result['errors'][0]}`"
            )
    return "\n".join(lines) + "\n"


def machine(kernels: list[str]) -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "kernels": kernels,
        "native_kernel": torch.backends.cpu.get_cpu_capability().lower(),
        "seed_shifts": list(SEED_SHIFTS),
        "threads": list(THREADS),
        "date": dt.date.today().isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", choices=("sample", "full"), default="sample")
    parser.add_argument("--only", nargs="*", help="part/section names (default: all)")
    parser.add_argument(
        "--workers", type=int, default=2, help="one-thread runs at once"
    )
    parser.add_argument("--no-write", action="store_true", help="print, write nothing")
    parser.add_argument(
        "--page-only",
        action="store_true",
        help="rewrite back/robustness.md from back/robustness.json",
    )
    args = parser.parse_args()
    if args.page_only:
        PAGE.write_text(render(json.loads(RECORDS.read_text())))
        return
    sections = toc_sections()
    old = json.loads(RECORDS.read_text()) if RECORDS.exists() else None
    kernels = cpu_kernels()
    if args.only and old:
        # A partial re-run joins the recorded matrix: it runs the matrix's kernels (a
        # processor with more, such as avx512, would give one section configurations
        # the others lack), and only where this processor can run them all.
        kernels = old["meta"]["kernels"]
        missing = set(kernels) - set(cpu_kernels())
        if missing:
            parser.error(
                f"the matrix was recorded with kernels {kernels}; this processor "
                f"cannot run {sorted(missing)}: re-run the whole matrix instead"
            )
    runs = plan(sections, kernels, args.plan == "full")
    if args.only:
        unknown = set(args.only) - set(sections)
        if unknown:
            parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
        runs = [r for r in runs if r["section"] in args.only]
    print(f"{len(runs)} runs", flush=True)
    started = time.perf_counter()
    results = run_matrix(runs, args.workers)
    for result in results:  # the notes of a section name the day its own runs were made
        result["date"] = dt.date.today().isoformat()
    order = {s: i for i, s in enumerate(sections)}
    results.sort(
        key=lambda r: (order[r["section"]], r["seed_shift"], r["kernel"], r["threads"])
    )
    meta = {
        **machine(kernels),
        "plan": args.plan,
        "wall_minutes": (time.perf_counter() - started) / 60,
    }
    data = {"meta": meta, "results": results}
    if old is not None and not args.no_write:
        if args.only:  # keep the other sections' records, and the day they were made
            kept = [
                {"date": old["meta"]["date"], **r}
                for r in old["results"]
                if r["section"] not in args.only
            ]
            data["results"] = sorted(
                kept + results,
                key=lambda r: (
                    order.get(r["section"], 99),
                    r["seed_shift"],
                    r["kernel"],
                    r["threads"],
                ),
            )
            meta["wall_minutes"] += old["meta"].get("wall_minutes", 0)
        if "gpu" in old["meta"]:
            meta["gpu"] = old["meta"]["gpu"]
    page = render(data)
    if args.no_write:
        print(page)
        return
    RECORDS.write_text(json.dumps(data, indent=1) + "\n")
    PAGE.write_text(page)
    print(f"wrote {RECORDS.relative_to(REPO)} and {PAGE.relative_to(REPO)}")


if __name__ == "__main__":
    main()
