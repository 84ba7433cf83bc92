"""A throw-away PostgreSQL server for trying parallel grading on one machine, and for
the tests and the benchmark: a fresh cluster in a temporary folder, listening on
localhost only, for one user with a random password (kept in ``FOLDER/password``, mode
600).

    python -m grading.postgres start /tmp/gradebook-pg     # prints the db_url
    python -m grading.postgres start                       # in a new temporary folder
    python -m grading.postgres stop /tmp/gradebook-pg

The printed URL holds the password: keep it in ``GRADEBOOK_URL`` or a private file for
the workers (``export GRADEBOOK_URL=$(python -m grading.postgres start)``). For a real
course, use a managed or properly administered PostgreSQL instead (see the instructors'
guide); this server lives in a temporary folder.

PostgreSQL refuses to run as root. When this process is root, the server runs as the
system user ``postgres`` if it exists, else as ``nobody``, via ``runuser``.
"""

from __future__ import annotations

import argparse
import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "grader"
DATABASE = "gradebook"


def find_binary(name: str) -> str | None:
    """``name`` (initdb, pg_ctl, postgres) from PATH or a Debian/Ubuntu install."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def unavailable_reason() -> str | None:
    """Why a local server cannot be started here, or None when it can."""
    for name in ("initdb", "pg_ctl"):
        if find_binary(name) is None:
            return f"PostgreSQL's {name} is not installed (apt-get install postgresql)"
    if os.geteuid() == 0 and _service_user() is None:
        return (
            "running as root, and neither runuser nor a 'postgres'/'nobody' user exists"
        )
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver is missing (pip install psycopg2-binary)"
    return None


def _service_user() -> str | None:
    if shutil.which("runuser") is None:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    folder: Path
    port: int
    run_as: str | None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def password_file(self) -> Path:
        return self.folder / "password"

    @property
    def password(self) -> str:
        return self.password_file.read_text(encoding="utf-8").strip()

    @property
    def db_url(self) -> str:
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; name the driver
        # installed.
        return (
            f"postgresql+psycopg2://{USER}:{self.password}@127.0.0.1:{self.port}/"
            f"{DATABASE}"
        )

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        done = subprocess.run(
            prefix + list(command), capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(prefix + list(command))} failed:\n"
                f"{done.stdout}{done.stderr}"
            )
        return done

    def start(self) -> "Server":
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            import pwd

            entry = pwd.getpwnam(self.run_as)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        os.chmod(self.folder, 0o700)
        if not (self.data / "PG_VERSION").exists():
            self.password_file.write_text(
                secrets.token_hex(16) + "\n", encoding="utf-8"
            )
            os.chmod(self.password_file, 0o600)
            if self.run_as:
                os.chown(self.password_file, entry.pw_uid, entry.pw_gid)
            self._run(
                find_binary("initdb"),
                "-D",
                str(self.data),
                "-U",
                USER,
                "--auth=scram-sha-256",
                f"--pwfile={self.password_file}",
                "--encoding=UTF8",
                "--no-locale",
            )
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c fsync=off"
        )
        self._run(
            find_binary("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        self._create_database()
        (self.folder / "port").write_text(str(self.port))
        return self

    def _create_database(self) -> None:
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                connection = psycopg2.connect(
                    host="127.0.0.1",
                    port=self.port,
                    user=USER,
                    password=self.password,
                    dbname="postgres",
                )
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE DATABASE {DATABASE}")
        connection.close()

    def stop(self, remove: bool = False) -> None:
        self._run(
            find_binary("pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            "fast",
            "-w",
            "stop",
            check=False,
        )
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)


def fresh_database(db_url: str, name: str) -> str:
    """Create (or empty) the database ``name`` on the server of ``db_url``; return its
    URL. ``name`` must be a plain identifier."""
    import psycopg2
    from sqlalchemy.engine import make_url

    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain database name: {name!r}")
    url = make_url(db_url)
    connection = psycopg2.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database or "postgres",
    )
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        cursor.execute(f"CREATE DATABASE {name}")
    connection.close()
    return url.set(database=name).render_as_string(hide_password=False)


def start(folder: Path | None = None, port: int | None = None) -> Server:
    """Start (initialising on first use) a server whose files live in ``folder``
    (default: a new temporary folder). When the server runs as another user, every
    folder above ``folder`` must be open to it: pytest's and mkdtemp's folders are not,
    so the default is a fresh folder directly in the system's temporary folder."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    run_as = _service_user() if os.geteuid() == 0 else None
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="gradebook-postgres-"))
    folder = Path(folder).resolve()
    if run_as:
        closed = [p for p in folder.parents if not os.stat(p).st_mode & 0o001]
        if closed:
            raise RuntimeError(
                f"the server runs as {run_as!r}, which cannot enter {closed[0]}"
            )
    return Server(folder, port or _free_port(), run_as).start()


def stop(folder: Path) -> None:
    folder = Path(folder).resolve()
    port = int((folder / "port").read_text()) if (folder / "port").exists() else 0
    run_as = _service_user() if os.geteuid() == 0 else None
    Server(folder, port, run_as).stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="A throw-away local PostgreSQL gradebook."
    )
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument(
        "folder",
        type=Path,
        nargs="?",
        help="where the server's files live (start: default a new temporary folder)",
    )
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    if args.action == "start":
        print(start(args.folder, args.port).db_url)
    elif args.folder is None:
        parser.error("stop needs the folder")
    else:
        stop(args.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
