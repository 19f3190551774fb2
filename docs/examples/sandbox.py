"""A minimal custom runtime: run an untrusted command in a sandbox.

No network (a network namespace with only lo), a read-only root filesystem
(the built-in busybox image, a tmpfs at /tmp), Docker's default seccomp
profile and capabilities, a memory limit, a pids limit, and a time limit.

    python3 docs/examples/sandbox.py -- sh -c 'echo hi from $(hostname)'
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid

from pycontainer import PIPE, Container, ContainerConfig, ExitStatus, Mount, Process, PyContainerError, Resources


def sandbox(argv: list[str], *, seconds: float, memory: int, pids: int) -> tuple[ExitStatus, bytes, bytes]:
    """Run ``argv``; its status (SIGKILL on timeout) and its output."""
    config = ContainerConfig(
        process=Process(args=argv, user="nobody"),
        readonly_rootfs=True,
        mounts=[Mount("/tmp", "tmpfs", "tmpfs", ["nosuid", "nodev", "size=16m"])],
        resources=Resources(memory=memory, memory_swap=memory, pids_limit=pids),
    )
    with tempfile.TemporaryDirectory(prefix="sandbox-") as root:
        with Container.run(root, f"sb-{uuid.uuid4().hex[:8]}", config, stdin=PIPE, stdout=PIPE, stderr=PIPE) as c:
            try:
                out, err = c.communicate(b"", timeout=seconds)
            except TimeoutError:
                c.kill(9)  # the time limit: its whole pid namespace goes with it
                out, err = c.communicate(timeout=10)
            return c.wait(), out or b"", err or b""
        # (leaving the with block deleted the container: its cgroup, mounts and namespaces)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--memory", type=int, default=64 << 20, help="bytes")
    p.add_argument("--pids", type=int, default=32)
    p.add_argument("cmd", nargs="+")
    args = p.parse_args()
    try:
        status, out, err = sandbox(args.cmd, seconds=args.seconds, memory=args.memory, pids=args.pids)
    except PyContainerError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return 125
    os.write(1, out)
    os.write(2, err)
    return status.code if status.code is not None else 128 + (status.signal or 0)


if __name__ == "__main__":
    sys.exit(main())
