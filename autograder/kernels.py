"""The kernel manager nbgrader's Execute uses for students' notebooks: each kernel confined by
sandbox.py (bubblewrap, limits, its own uid), started cold or forked from the student's warm
sandbox (warm.py), and reached over Unix sockets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import zmq
from jupyter_client.manager import AsyncKernelManager
from traitlets import Instance

from autograder import warm
from autograder.sandbox import (
    MAX_MESSAGE,
    Sandbox,
    clean_env,
    command,
    empty_group,
    joining,
    memory_group,
    prepare,
    reap,
)


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel confined, reached over Unix sockets."""

    sandbox = Instance(Sandbox, args=(), config=True)

    def _context_default(self) -> zmq.asyncio.Context:
        self._created_context = True
        context = zmq.asyncio.Context()
        context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)  # a print of gigabytes never reaches us
        return context

    @property
    def kernel_spec(self):
        spec = super().kernel_spec
        if spec is not None and self.sandbox.enabled:
            spec.interrupt_mode = "message"  # a signal would not cross bwrap's new session
        return spec

    async def _async_pre_start_kernel(self, **kw):
        zygote = warm.usable(self.sandbox, self.kernel_spec.argv if self.kernel_spec else [])
        if self.sandbox.enabled and not self.connection_file:
            self.transport = "ipc"
            if zygote is not None:  # a fork of the student's warm sandbox: a folder in its runtime
                runtime = zygote.kernel_folder()
                self.provisioner = warm.ForkProvisioner(kernel_id=kw.get("kernel_id") or runtime.name,
                                                        kernel_spec=self.kernel_spec, parent=self)
                self.provisioner.zygote = zygote
            else:
                runtime = Path(tempfile.mkdtemp(prefix="ag-"))  # short: socket paths must be < 108 bytes
            self.connection_file = str(runtime / "kernel.json")
            self.ip = str(runtime / "k")
        return await super()._async_pre_start_kernel(**kw)

    @property
    def _forked(self) -> bool:
        return isinstance(self.provisioner, warm.ForkProvisioner)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        if self.sandbox.enabled:
            workdir, runtime = Path(kw.get("cwd") or os.getcwd()), Path(self.connection_file).parent
            if os.getuid() == 0 and not self._forked:  # a fork's leftovers: the zygote kills them
                reap(self.sandbox.uid)
            prepare(workdir, self.sandbox.uid)
            prepare(runtime, self.sandbox.uid)
            kw["env"] = clean_env(kw.get("env") or dict(os.environ))
            if not self._forked:  # a fork runs in the warm sandbox, in its memory group
                kw["stdout"] = kw["stderr"] = subprocess.DEVNULL  # the student's, not the instructor's
                self._group = memory_group(f"ag-{os.getpid()}-{self.sandbox.uid}",
                                           self.sandbox.memory_mb * 2**20)
                kernel_cmd = joining(self._group, command(workdir, runtime, self.sandbox, kernel_cmd))
        await super()._async_launch_kernel(kernel_cmd, **kw)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not self.sandbox.enabled or restart:
            return
        if not self._forked:  # a fork's processes: the zygote kills them (warm.ForkProvisioner)
            empty_group(getattr(self, "_group", None))
            if os.getuid() == 0:
                reap(self.sandbox.uid)
        if self.connection_file:
            shutil.rmtree(Path(self.connection_file).parent, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources
