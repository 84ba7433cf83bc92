"""Fabricated submissions, and a benchmark of parallel autograding.

    python tools/grading_benchmark.py                  # 12 submissions, 1 and 2 workers
    python tools/grading_benchmark.py --copies 2 --workers 1 2 4
    GRADEBOOK_URL=postgresql+psycopg2://... python tools/grading_benchmark.py # a server
    python tools/grading_benchmark.py --workers 1 --sandbox off   # without the sandbox

Builds a temporary course with fabricated submissions of the section "Attention as a
soft dictionary lookup" (one of the fastest to grade: about 7 s a notebook here):
correct, buggy and hostile ones, the kinds of
tests/grading/test_grading_scaled_dot_product_attention.py. Then, for each worker count,
registers the assignment in a fresh PostgreSQL database (a throw-away local server from
grading/postgres.py unless GRADEBOOK_URL is set), runs
`python -m grading.workers launch`, and reports submissions graded per minute of
wall-clock time.

The submissions come from :mod:`grading.sample_submissions`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: grading/ is not an installed package

from grading.sample_submissions import fabricate, run_workers  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from grading import postgres

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        help="copies of each of the 13 kinds of submission (default 1)",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--sandbox",
        choices=["bubblewrap", "off"],
        default="bubblewrap",
        help="grade each kernel in the sandbox (default) or without it",
    )
    args = parser.parse_args(argv)
    # A PostgreSQL server URL ending in a database name; each run uses a fresh database
    # beside it. From the environment, not the command line: it may hold a password.
    existing = os.environ.get("GRADEBOOK_URL")

    with tempfile.TemporaryDirectory(prefix="grading-benchmark-") as scratch:
        scratch = Path(scratch)
        expected = fabricate(scratch / "course", args.copies)
        server = None
        if existing is None:
            server = postgres.start()  # its own folder: it may run as another user
            base = server.db_url
        else:
            base = existing
        results = []
        try:
            for count in args.workers:
                db_url = postgres.fresh_database(base, f"bench_{count}_{os.getpid()}")
                course = scratch / f"course-{count}"
                shutil.copytree(scratch / "course", course)
                report = scratch / f"report-{count}.jsonl"
                seconds = run_workers(course, db_url, count, report, args.sandbox)
                records = [json.loads(line) for line in report.read_text().splitlines()]
                graded = sum(record["success"] for record in records)
                results.append(
                    {
                        "workers": count,
                        "sandbox": args.sandbox,
                        "submissions": len(expected),
                        "graded": graded,
                        "seconds": round(seconds, 1),
                        "per_minute": round(60 * len(expected) / seconds, 1),
                    }
                )
                print(
                    f"{count} worker(s): {len(expected)} submissions "
                    f"({graded} gradable) in {seconds:.1f} s = "
                    f"{60 * len(expected) / seconds:.1f} per minute",
                    flush=True,
                )
        finally:
            if server is not None:
                server.stop(remove=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
