"""The grading process's hold on a kernel's operating-system process.

nbclient talks to a kernel over its sockets; :class:`~grading.execution.GuardedExecute`
also needs the process behind it, for two things: an address-space limit on it, and a
way to end it at once when a cell cannot be interrupted. :class:`KernelProcess` does
both over a jupyter_client kernel manager, through the manager's *provisioner*, the
object that launched the kernel, and only through what jupyter_client makes public:

* **which process**: a ``LocalProvisioner`` (the default, also under the sandbox of
  :mod:`grading.sandbox`) starts the kernel as a child of this process and keeps its
  ``pid``. Other provisioners (remote kernels, containers) give no process of this
  machine, so they get no limit here -- and a loud warning, not a silent skip;
* **the limit**: ``RLIMIT_AS`` set with ``prlimit`` (Linux) and read back. Under
  :class:`~grading.sandbox.SandboxedKernelManager` it was set when bubblewrap started
  (the kernel is bubblewrap's child, and a limit set on bubblewrap afterwards would not
  reach it), so it is only read back. When the limit cannot be applied, the log says so
  in a warning; with ``strict=True`` :class:`MemoryLimitUnavailable` is raised instead;
* **stopping**: the provisioner's ``kill`` (``SIGKILL`` to the kernel's process group,
  so what the kernel started ends too), then its ``wait``. The manager's own
  ``shutdown_kernel(now=True)`` would also close the connection files and sockets that
  nbclient is still holding and cleans up itself when the notebook ends.

Nothing here catches ``AttributeError``: a manager or provisioner that lacks what this
module relies on fails where it is used.
"""

from __future__ import annotations

import asyncio
import logging

try:  # POSIX only
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None

from jupyter_client.provisioning import LocalProvisioner
from jupyter_client.utils import run_sync

from grading.sandbox import SandboxedKernelManager

STOP_WAIT_SECONDS = 5.0  # as jupyter_client's own kill waits for the process to end
NO_LIMIT_ADVICE = "limit memory with the container or set memory_limit_mb = 0"


class MemoryLimitUnavailable(RuntimeError):
    """The kernel's memory limit could not be applied (strict mode); the message says
    why."""


class KernelProcess:
    """The process of the kernel that ``km`` (a jupyter_client kernel manager) manages.

    ``log`` receives the warnings (default: this module's logger); ``label`` starts each
    message (the name the grading log knows the caller by); ``strict`` turns a limit
    that cannot be applied into :class:`MemoryLimitUnavailable`.
    """

    def __init__(
        self,
        km,
        log: logging.Logger | None = None,
        *,
        strict: bool = False,
        label: str = "grading",
    ):
        self.km = km
        self.log = log if log is not None else logging.getLogger(__name__)
        self.strict = strict
        self.label = label

    @property
    def pid(self) -> int | None:
        """The kernel's process id on this machine, or None where there is none to give:
        no kernel started, or a provisioner that does not run it as a local process."""
        if self.km is None or not self.km.has_kernel:
            return None
        provisioner = self.km.provisioner
        if not isinstance(provisioner, LocalProvisioner):
            return None  # whatever id it may keep, it is not a process of this machine
        return provisioner.pid

    def limit_address_space(self, megabytes: int) -> bool:
        """Cap the kernel's address space at ``megabytes`` MiB (0: no limit wanted).

        True when the limit is in place (read back from the process); otherwise False
        after a warning, or :class:`MemoryLimitUnavailable` when ``strict``.
        """
        if not megabytes:
            return True
        limit = megabytes * 1024 * 1024
        if resource is None or not hasattr(resource, "prlimit"):  # prlimit: Linux only
            return self._not_limited(megabytes, "no memory limit on this system")
        pid = self.pid
        if pid is None:
            if self.km is None or not self.km.has_kernel:
                return self._not_limited(megabytes, "no kernel is running")
            return self._not_limited(
                megabytes,
                f"the kernel's provisioner ({type(self.km.provisioner).__name__}) "
                "gives no process of this machine",
            )
        if isinstance(self.km, SandboxedKernelManager):
            # Set when bubblewrap started; a limit set on bubblewrap now would not reach
            # the kernel it has already started inside.
            if self.km.memory_limit_mb != megabytes:
                return self._not_limited(
                    megabytes,
                    f"the sandboxed kernel was started with memory_limit_mb = "
                    f"{self.km.memory_limit_mb}",
                )
        else:
            try:
                resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
            except (
                OSError,
                ValueError,
            ) as error:  # gone, not ours, above our own limit
                return self._not_limited(megabytes, f"prlimit({pid}) failed: {error}")
        try:
            now = resource.prlimit(pid, resource.RLIMIT_AS)
        except OSError as error:
            return self._not_limited(
                megabytes, f"its limit could not be read back: {error}"
            )
        if now != (limit, limit):
            return self._not_limited(
                megabytes, f"the process's limit reads {now} bytes"
            )
        return True

    def _not_limited(self, megabytes: int, reason: str) -> bool:
        message = (
            f"{self.label}: the kernel runs WITHOUT its memory limit of {megabytes} "
            f"MiB: {reason}; {NO_LIMIT_ADVICE}"
        )
        if self.strict:
            raise MemoryLimitUnavailable(message)
        self.log.warning(message)
        return False

    def stop(self, wait_seconds: float = STOP_WAIT_SECONDS) -> None:
        """Kill the kernel now and wait (at most ``wait_seconds``) until it has ended.

        Nothing to do without a running kernel. A kill that fails, or a process that is
        still there after the wait, is logged as a warning: grading goes on (the
        remaining cells are not run anyway) and nbclient tries again when it cleans up.
        """
        if self.km is None or not self.km.has_kernel:
            return
        run_sync(self._kill_and_wait)(self.km.provisioner, wait_seconds)

    async def _kill_and_wait(self, provisioner, wait_seconds: float) -> None:
        try:
            await provisioner.kill()
        except ProcessLookupError:
            pass  # it ended on its own meanwhile
        except (
            OSError,
            ValueError,
        ) as error:  # LocalProvisioner re-raises as ValueError
            self.log.warning(f"{self.label}: the kernel could not be killed: {error!r}")
            return
        try:
            await asyncio.wait_for(provisioner.wait(), wait_seconds)
        except asyncio.TimeoutError:
            self.log.warning(
                f"{self.label}: the kernel was killed but had not ended after "
                f"{wait_seconds} s"
            )
