"""Each submission's kernel in an operating-system sandbox: it sees only itself.

The checks in ``seqbook.checks`` run inside the kernel, beside the student's code, so
they cannot stop that code from reading or writing files of the grading machine: the
instructor's ``solutions/``, the gradebook, other students' submissions and feedback,
or the database URL of a grading worker. The operating system can. Each kernel is
started by `bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``, Debian's
``bubblewrap`` package) in new namespaces:

* **files**: an empty root with, read-only, the system's ``/usr`` (and ``/bin``,
  ``/lib``...), the Python environment (its prefixes and the ``seqbook`` package) and
  nothing else of the course directory; writable, only a private copy of the student's
  own assignment folder (``/submission``, the working directory) and an empty ``/tmp``,
  both thrown away after grading;
* **network**: a namespace of its own with only its own loopback, so neither the
  PostgreSQL gradebook nor anything else listening on the machine can be reached;
* **processes**: a PID namespace of its own (``/proc`` shows the kernel and its children
  only, not the grader or the workers and their command lines); when the kernel ends or
  is killed, everything it started ends with it;
* **environment**: emptied, then given a short list of harmless variables
  (:data:`PASSED_VARIABLES`); no database URL or token reaches the kernel;
* **no capabilities**, a user namespace of its own, and the kernel's memory limit
  (``RLIMIT_AS``) set before it starts, so it holds for every process inside.

The kernel talks to the grader over ZeroMQ's ``ipc`` transport: Unix sockets in a
private folder, the only host folder besides the assignment copy that is mounted
writable (there is no shared loopback to use ``tcp`` on).

Why bubblewrap rather than ``unshare`` or a container engine: it builds the whole
sandbox -- user, mount, PID, network, IPC and UTS namespaces, a root made only of the
listed folders, capabilities dropped, the child killed with its parent -- in one
unprivileged command, without a daemon or root, and it is packaged by every Linux
distribution (Flatpak is built on it). ``unshare`` gives the namespaces but leaves the
file view (bind mounts, an empty root) to be scripted by hand; Docker or Podman need a
daemon or an image per course.

Where the sandbox cannot be made (not Linux, no ``bwrap``, user namespaces disabled),
:func:`require` raises :class:`SandboxUnavailable`, which names the reason and the
opt-out; grading then refuses to run (it fails closed).
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from jupyter_client import AsyncKernelManager
from traitlets import Integer, Unicode

SANDBOX_BUBBLEWRAP = "bubblewrap"
SANDBOX_OFF = "off"
OPT_OUT = (
    "GRADING_SANDBOX=off in the environment of nbgrader, or "
    "c.GuardedExecute.sandbox = 'off' in nbgrader_config.py"
)
BUBBLEWRAP = "bwrap"  # the command, looked up on PATH
INSIDE_FOLDER = "/submission"  # the private copy of the assignment folder, inside

# Variables the kernel may see (copied when the grader has them); everything else -- the
# database URL, tokens, JPY_PARENT_PID, the grader's paths -- stays outside.
PASSED_VARIABLES = (
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TERM",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "ATEN_CPU_CAPABILITY",
    "CUDA_VISIBLE_DEVICES",
    "PYTHONHASHSEED",
    "NBGRADER_EXECUTION",
    "SEQBOOK_SEED",
    "MPLBACKEND",
)

# System folders and files shown read-only (those that exist on this machine).
SYSTEM_PATHS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/fonts",
    "/sys/devices/system/cpu",
)  # the CPU topology that PyTorch reads


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be made here; the message says why and how to opt out."""

    def __init__(self, reason: str):
        super().__init__(
            f"Autograding refuses to run submissions outside a sandbox: {reason}. "
            "Install bubblewrap (Debian and Ubuntu: `apt install bubblewrap`) on a "
            "Linux host that allows unprivileged user namespaces. Only if every "
            "submission already runs in a container of its own (see the instructors' "
            f"guide) opt out with {OPT_OUT}; grading then warns in its log and in the "
            "grade report."
        )
        self.reason = reason


def python_paths() -> list[str]:
    """Folders of the Python environment the kernel needs: the interpreter's prefixes
    (a virtual environment and the installation it was made from) and the folders of
    the ``seqbook`` package, which an editable install keeps in the course directory."""
    paths = {
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        str(Path(sys.executable).resolve().parent.parent),
    }
    spec = importlib.util.find_spec("seqbook")
    if spec is not None and spec.submodule_search_locations:
        paths.update(spec.submodule_search_locations)
    return sorted(p for p in paths if p and os.path.isdir(p))


def bubblewrap_arguments(
    private_folder: str, socket_folder: str, environment: dict[str, str] | None = None
) -> list[str]:
    """``bwrap`` and its options, up to (and including) the ``--`` before the
    command."""
    bwrap = shutil.which(BUBBLEWRAP)
    if bwrap is None:
        raise SandboxUnavailable("the `bwrap` command (bubblewrap) is not installed")
    environment = os.environ if environment is None else environment
    arguments = [
        bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--cap-drop",
        "ALL",
        "--tmpfs",
        "/",
    ]
    for path in SYSTEM_PATHS:
        arguments += ["--ro-bind-try", path, path]
    for path in python_paths():
        arguments += ["--ro-bind", path, path]
    arguments += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/dev/shm",
        "--tmpfs",
        "/tmp",
        "--dir",
        "/tmp/home",
    ]
    for device in sorted(glob.glob("/dev/nvidia*")):  # a GPU, where the grader has one
        arguments += ["--dev-bind", device, device]
    arguments += [
        "--bind",
        private_folder,
        INSIDE_FOLDER,
        "--bind",
        socket_folder,
        socket_folder,
        "--remount-ro",
        "/",
        "--chdir",
        INSIDE_FOLDER,
        "--clearenv",
    ]
    for name, value in sorted(kernel_environment(environment).items()):
        arguments += ["--setenv", name, value]
    return arguments + ["--"]


def kernel_environment(environment: dict[str, str]) -> dict[str, str]:
    """The variables the sandbox starts with: :data:`PASSED_VARIABLES` and its own
    paths.

    bubblewrap itself must be started with this environment too, not only the kernel:
    its init process (PID 1 inside) keeps the environment it was started with, and the
    kernel can read it in ``/proc/1/environ``."""
    variables = {
        name: environment[name] for name in PASSED_VARIABLES if name in environment
    }
    variables.update(
        HOME="/tmp/home",
        PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin",
        MPLCONFIGDIR="/tmp/home/.matplotlib",
        XDG_CACHE_HOME="/tmp/home/.cache",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return variables


@functools.lru_cache(maxsize=None)
def _probe() -> str | None:
    """None when a sandboxed Python starts here, else the reason it does not."""
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux namespaces and this is {sys.platform}"
    with tempfile.TemporaryDirectory(prefix="grading-probe-") as folder:
        private, sockets = Path(folder, "submission"), Path(folder, "sockets")
        private.mkdir()
        sockets.mkdir()
        command = bubblewrap_arguments(str(private), str(sockets)) + [
            sys.executable,
            "-c",
            "import os; print(os.getpid())",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"bubblewrap could not be started ({error})"
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return f"bubblewrap could not make the sandbox here ({detail})"
    return None


def require() -> None:
    """Raise :class:`SandboxUnavailable` unless submissions can be sandboxed here."""
    if shutil.which(BUBBLEWRAP) is None:
        raise SandboxUnavailable("the `bwrap` command (bubblewrap) is not installed")
    reason = _probe()
    if reason is not None:
        raise SandboxUnavailable(reason)


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs under bubblewrap (module docstring).

    Before the kernel starts, the working directory it was given (the submission's
    folder under ``autograded/``) is copied to a private folder, which the kernel sees
    as ``/submission``; the copy and the socket folder are removed when the kernel is
    cleaned up, so nothing the submission writes survives its grading.
    """

    memory_limit_mb = Integer(
        0,
        help="Address-space limit of the kernel in MiB "
        "(0: none), set before it starts.",
    ).tag(config=True)
    scratch_parent = Unicode(
        "",
        help="Where private folders are made (default: the system's temporary folder).",
    ).tag(config=True)

    async def _async_pre_start_kernel(self, **kw):
        require()
        self._scratch = tempfile.mkdtemp(
            prefix="grading-sandbox-", dir=self.scratch_parent or None
        )
        os.chmod(self._scratch, 0o700)
        sockets = os.path.join(self._scratch, "sockets")
        private = os.path.join(self._scratch, "submission")
        os.mkdir(sockets)
        source = kw.pop("cwd", None)
        if source and os.path.isdir(source):
            shutil.copytree(source, private, symlinks=True)
        else:
            os.mkdir(private)
        self.transport = "ipc"
        self.ip = os.path.join(sockets, "kernel")
        self.connection_file = os.path.join(sockets, "connection.json")
        # Interrupt with a message on the control channel: a signal to the process group
        # would stop bubblewrap itself, and the kernel with it.
        self.kernel_spec.interrupt_mode = "message"
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        kw["cwd"] = self._scratch
        limit = self.memory_limit_mb * 1024 * 1024
        if limit:
            kw["preexec_fn"] = functools.partial(_limit_address_space, limit)
        environment = kernel_environment(kw.get("env") or os.environ)
        kw["env"] = dict(
            environment
        )  # bubblewrap's own environment: see kernel_environment
        return bubblewrap_arguments(private, sockets, environment) + kernel_cmd, kw

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        scratch = getattr(self, "_scratch", None)
        if scratch and not restart:
            shutil.rmtree(scratch, ignore_errors=True)
            self._scratch = None

    # AsyncKernelManager binds its public names to the base class's coroutines.
    pre_start_kernel = _async_pre_start_kernel
    cleanup_resources = _async_cleanup_resources


def _limit_address_space(limit: int) -> None:
    """Run in the child between fork and exec: bwrap and everything it starts inherit
    it."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
