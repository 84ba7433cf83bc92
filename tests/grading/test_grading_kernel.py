"""grading/kernel.py: the memory limit and the stop, on real kernels and on small fakes.

The real kernels are the course's `python3` kernel started by jupyter_client's own
KernelManager (its LocalProvisioner), and once under the bubblewrap sandbox. The fakes
stand for what a real run rarely shows: a provisioner that runs its kernel elsewhere (no
process of this machine), a system without prlimit, a process that is already gone, a
manager or provisioner that lacks what the adapter relies on.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from jupyter_client import KernelManager
from jupyter_client.provisioning import LocalProvisioner
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from jupyter_client.utils import run_sync

from grading import kernel as kernel_module
from grading import sandbox
from grading.execution import GuardedExecute
from grading.kernel import KernelProcess, MemoryLimitUnavailable

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None

KERNEL_NAME = "python3"  # as nbgrader starts it for the course's notebooks
MIB = 1024 * 1024
LIMIT_MB = 2048  # room for the kernel itself (some 0.3-0.6 GB of address space)
LOG = logging.getLogger("test_grading_kernel")

on_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(resource, "prlimit"),
    reason="the memory limit uses prlimit and the checks read /proc: Linux only",
)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, killed and not yet reaped, is
    not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def gone_within(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def local_kernel():
    """A real python3 kernel under jupyter_client's LocalProvisioner, and a client to
    it."""
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        km.cleanup_resources()


def execute(kc, code: str, **user_expressions: str) -> dict:
    reply = kc.execute_interactive(
        code,
        user_expressions=user_expressions,
        timeout=30,
        output_hook=lambda message: None,
    )
    return reply["content"]


# -- real kernels ----------------------------------------------------------------------


@on_linux
def test_the_limit_is_applied_to_a_real_local_kernel(local_kernel):
    km, kc = local_kernel
    kernel = KernelProcess(km, LOG, strict=True)
    assert kernel.pid == km.provisioner.pid and running(kernel.pid)

    assert kernel.limit_address_space(LIMIT_MB) is True
    assert resource.prlimit(kernel.pid, resource.RLIMIT_AS) == (
        LIMIT_MB * MIB,
        LIMIT_MB * MIB,
    )

    # ... and it holds in the kernel: an allocation beyond it fails there, the kernel
    # lives.
    content = execute(kc, f"hoard = bytearray({2 * LIMIT_MB} * 2**20)")
    assert (content["status"], content["ename"]) == ("error", "MemoryError")
    content = execute(kc, "small = bytearray(2**20)", size="len(small)")
    assert content["status"] == "ok"
    assert content["user_expressions"]["size"]["data"]["text/plain"] == str(2**20)


@on_linux
def test_stop_kills_a_real_kernel_and_what_it_started(local_kernel):
    km, kc = local_kernel
    content = execute(
        kc,
        "import subprocess\nchild = subprocess.Popen(['sleep', '60'])",
        child="child.pid",
    )
    assert content["status"] == "ok"
    child = int(content["user_expressions"]["child"]["data"]["text/plain"])
    kernel = KernelProcess(km, LOG)
    pid = kernel.pid
    assert running(pid) and running(child)

    kernel.stop()

    assert not running(pid), "the kernel is still there"
    assert not km.has_kernel and not km.is_alive()  # the provisioner waited for it
    assert gone_within(child), "the kernel's child survived it"
    kernel.stop()  # nothing left to stop: no error


@pytest.mark.skipif(
    sandbox._probe() is not None, reason=f"no sandbox here: {sandbox._probe()}"
)
def test_a_sandboxed_kernel_keeps_the_limit_it_was_started_with(tmp_path, caplog):
    folder = tmp_path / "submission"
    folder.mkdir()
    # The kernel's sockets live in the scratch folder: a Unix socket path holds at most
    # 107 bytes, which pytest-xdist's temporary folders can exceed.
    scratch = tempfile.mkdtemp(prefix="kernel-test-")
    km = sandbox.SandboxedKernelManager(
        kernel_name=KERNEL_NAME, memory_limit_mb=LIMIT_MB, scratch_parent=scratch
    )
    run_sync(km.start_kernel)(cwd=str(folder))
    try:
        kernel = KernelProcess(km, LOG, strict=True)
        pid = kernel.pid  # bubblewrap, whose limit everything inside inherited
        assert resource.prlimit(pid, resource.RLIMIT_AS) == (
            LIMIT_MB * MIB,
            LIMIT_MB * MIB,
        )
        assert kernel.limit_address_space(LIMIT_MB) is True

        with caplog.at_level(logging.WARNING, logger=LOG.name):
            assert KernelProcess(km, LOG).limit_address_space(LIMIT_MB // 2) is False
        assert "started with memory_limit_mb = 2048" in caplog.text

        kernel.stop()
        assert not running(pid) and not km.has_kernel
    finally:
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)
        run_sync(km.cleanup_resources)()
        shutil.rmtree(scratch, ignore_errors=True)


# -- fakes -----------------------------------------------------------------------------


class RemoteProvisioner(KernelProvisionerBase):
    """A provisioner whose kernel runs elsewhere: it has a kernel, but no local
    process."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls: list[str] = []

    @property
    def has_process(self) -> bool:
        return True

    async def poll(self):
        return None

    async def wait(self):
        self.calls.append("wait")
        return 0

    async def send_signal(self, signum):
        self.calls.append(f"signal {signum}")

    async def kill(self, restart=False):
        self.calls.append("kill")

    async def terminate(self, restart=False):
        self.calls.append("terminate")

    async def launch_kernel(self, cmd, **kwargs):
        return {}

    async def cleanup(self, restart=False):
        pass


class BrokenProvisioner(RemoteProvisioner):
    async def kill(self, restart=False):
        raise AttributeError("'NoneType' object has no attribute 'send_signal'")


class FakeManager:
    """What KernelProcess reads of a kernel manager: ``has_kernel`` and
    ``provisioner``."""

    def __init__(self, provisioner):
        self.provisioner = provisioner

    @property
    def has_kernel(self) -> bool:
        return self.provisioner.has_process


def test_no_local_process_warns_loudly(caplog):
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert (
            KernelProcess(FakeManager(RemoteProvisioner()), LOG).limit_address_space(
                512
            )
            is False
        )
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "WITHOUT its memory limit of 512 MiB" in record.getMessage()
    assert "RemoteProvisioner" in record.getMessage()


def test_no_local_process_raises_when_strict():
    kernel = KernelProcess(FakeManager(RemoteProvisioner()), LOG, strict=True)
    assert kernel.pid is None
    with pytest.raises(
        MemoryLimitUnavailable, match="gives no process of this machine"
    ):
        kernel.limit_address_space(512)


def test_no_prlimit_on_this_system_warns(monkeypatch, caplog):
    monkeypatch.setattr(kernel_module, "resource", None)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert (
            KernelProcess(FakeManager(RemoteProvisioner()), LOG).limit_address_space(
                512
            )
            is False
        )
    assert "no memory limit on this system" in caplog.text
    with pytest.raises(MemoryLimitUnavailable, match="no memory limit on this system"):
        KernelProcess(
            FakeManager(RemoteProvisioner()), LOG, strict=True
        ).limit_address_space(1)


def test_no_limit_wanted_needs_nothing():
    assert (
        KernelProcess(
            FakeManager(RemoteProvisioner()), LOG, strict=True
        ).limit_address_space(0)
        is True
    )


@on_linux
def test_a_process_already_gone_warns(caplog):
    ended = subprocess.Popen(["true"])
    ended.wait()
    provisioner = LocalProvisioner()
    provisioner.process, provisioner.pid = ended, ended.pid
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert (
            KernelProcess(FakeManager(provisioner), LOG).limit_address_space(512)
            is False
        )
    assert f"prlimit({ended.pid}) failed" in caplog.text


def test_stop_goes_through_the_provisioners_public_methods():
    provisioner = RemoteProvisioner()
    KernelProcess(FakeManager(provisioner), LOG).stop()
    assert provisioner.calls == ["kill", "wait"]


def test_attribute_errors_are_not_swallowed():
    with pytest.raises(AttributeError, match="send_signal"):
        KernelProcess(FakeManager(BrokenProvisioner()), LOG).stop()

    class NoProvisioner:
        has_kernel = True

    with pytest.raises(AttributeError, match="provisioner"):
        KernelProcess(NoProvisioner(), LOG).stop()
    with pytest.raises(AttributeError, match="provisioner"):
        KernelProcess(NoProvisioner(), LOG).limit_address_space(512)


# -- GuardedExecute uses it ------------------------------------------------------------


def test_guarded_execute_warns_or_refuses_and_stops_through_the_adapter(caplog):
    provisioner = RemoteProvisioner()
    execute = GuardedExecute(memory_limit_mb=512, preamble="", log=LOG)
    execute.km = FakeManager(provisioner)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        execute._prepare_kernel()
    assert (
        "GuardedExecute: the kernel runs WITHOUT its memory limit of 512 MiB"
        in caplog.text
    )

    execute.memory_limit_required = True
    with pytest.raises(MemoryLimitUnavailable):
        execute._prepare_kernel()

    execute._stop_kernel()
    assert provisioner.calls == ["kill", "wait"]
