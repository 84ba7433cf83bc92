"""Where the grading tools find the gradebook's URL -- never on a command line.

Any process on the machine can read any other's command line (``/proc/<pid>/cmdline``,
``ps``), so a database URL with a password passed as ``--db`` would be visible to every
user of a shared grading machine. The tools take the URL, in this order, from:

* ``--db-file FILE``: a file holding the URL, readable by its owner only (mode 600);
* the environment variable ``GRADEBOOK_URL`` (a Kubernetes Secret, a CI secret);
* ``--db URL``, only for a URL without a password (a SQLite file, a server that trusts
  the local user): one with a password is refused with a message saying where to put it.

Worker processes started by ``grading.workers launch`` receive the URL in their
environment; submissions never see it (``grading.sandbox`` empties the kernel's
environment and hides the workers' processes).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

ENVIRONMENT_VARIABLE = "GRADEBOOK_URL"


class CredentialError(ValueError):
    """The gradebook's URL was given in an unsafe or inconsistent way."""


def has_password(url: str) -> bool:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password is not None
    except Exception:  # not a URL SQLAlchemy understands: let the database say so
        return ":" in url.partition("://")[2].partition("@")[0] and "@" in url


def read_url_file(path: Path) -> str:
    """The URL in ``path``, refused when others than its owner may read it."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise CredentialError(
            f"cannot read the gradebook URL file {path}: {error}"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialError(
            f"{path} may be read by other users (mode {stat.filemode(mode)}): it holds "
            f"the gradebook's credentials, so make it private first: chmod 600 {path}"
        )
    url = path.read_text(encoding="utf-8").strip()
    if not url:
        raise CredentialError(f"the gradebook URL file {path} is empty")
    return url


def gradebook_url(
    db: str | None = None, db_file: Path | None = None, default: str | None = None
) -> str:
    """The gradebook URL from ``--db-file``, ``$GRADEBOOK_URL`` or ``--db`` (see
    above)."""
    if db is not None and db_file is not None:
        raise CredentialError(
            "give the gradebook either with --db or with --db-file, not both"
        )
    if db is not None:
        if has_password(db):
            raise CredentialError(
                "the gradebook URL given with --db holds a password, and every process "
                "on this machine can read command lines: put the URL in the "
                f"environment variable {ENVIRONMENT_VARIABLE}, or in a file only you "
                "can read and pass --db-file FILE"
            )
        return db
    if db_file is not None:
        return read_url_file(db_file)
    url = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if url:
        return url
    if default is not None:
        return default
    raise CredentialError(
        f"no gradebook given: set {ENVIRONMENT_VARIABLE}, or pass "
        "--db-file FILE (or --db URL for a URL without a password)"
    )
