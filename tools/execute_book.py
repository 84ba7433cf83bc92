"""Run every notebook of the book, several at once, into Jupyter Book's execution cache.

`jupyter-book build` runs notebooks one after another. `make book` calls this first: it
empties the cache (outputs depend on the seqbook package too, which the cache's hash of
the cell sources does not see, so a cached output could be stale), executes the
notebooks of _toc.yml in a pool of kernels (longest first, by back/runtimes.json), and
stores each executed notebook in the cache, where the build finds it
(`execute_notebooks: cache` in _config.yml). Every notebook already limits itself to
one math thread, so a pool as large as the number of cores does not oversubscribe them.

A notebook that fails here is not cached: the build then runs it itself and reports the
error as usual (`-W`). The timeout is _config.yml's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nbformat
import yaml
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from jupyter_cache.executors.utils import single_nb_execution

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "_build" / ".jupyter_cache"
RUNTIMES = REPO / "back" / "runtimes.json"


def toc_notebooks() -> list[Path]:
    """Every notebook page listed in _toc.yml."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [
        chapter["file"]
        for part in toc.get("parts", [])
        for chapter in part.get("chapters", [])
    ]
    return [REPO / f"{f}.ipynb" for f in files if (REPO / f"{f}.ipynb").exists()]


def longest_first(notebooks: list[Path]) -> list[Path]:
    """Order by the student versions' measured run times, unknown ones first."""
    sections = json.loads(RUNTIMES.read_text())["sections"] if RUNTIMES.exists() else {}

    def seconds(path: Path) -> float:
        figures = sections.get(f"{path.parent.name}/{path.stem}", {})
        return figures.get("student", {}).get("seconds", float("inf"))

    return sorted(notebooks, key=seconds, reverse=True)


def execute(path: Path, timeout: int) -> tuple[Path, nbformat.NotebookNode, float, str]:
    """Run ``path`` in its own folder; returns the executed notebook, its run time and
    the error's traceback ('' when it ran through)."""
    notebook = nbformat.read(path, as_version=4)
    result = single_nb_execution(
        notebook, cwd=str(path.parent), timeout=timeout, allow_errors=False
    )
    error = (result.exc_string or repr(result.err)) if result.err is not None else ""
    return path, notebook, result.time, error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("BOOK_WORKERS", min(os.cpu_count() or 1, 4))),
        help="kernels at once (default: the cores, at most 4; env BOOK_WORKERS)",
    )
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "_config.yml").read_text())["execute"]
    assert config["execute_notebooks"] == "cache", "_config.yml must read the cache"
    cache = get_cache(str(CACHE))
    cache.clear_cache()
    notebooks = longest_first(toc_notebooks())
    started = time.perf_counter()
    failed = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(execute, p, config["timeout"]) for p in notebooks]
        for future in as_completed(futures):
            path, notebook, seconds, error = future.result()
            name = path.relative_to(REPO)
            if error:
                failed.append(name)
                print(f"{name}: FAILED after {seconds:.1f} s\n{error}", flush=True)
                continue
            cache.cache_notebook_bundle(
                CacheBundleIn(notebook, str(path), data={"execution_seconds": seconds}),
                check_validity=False,
                overwrite=True,
            )
            print(f"{name}: {seconds:.1f} s", flush=True)
    print(
        f"executed {len(notebooks)} notebooks with {args.workers} kernels at once in "
        f"{time.perf_counter() - started:.0f} s"
        + (f"; {len(failed)} failed, left to the build to report" if failed else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
