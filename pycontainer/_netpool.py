"""A small pool of fresh network namespaces, made ahead of time.

Creating a network namespace is the most expensive part of clone() by far
(about 0.6 ms of the kernel's time on a 2-core VM, more than every other
namespace together).  A fresh, unused namespace is indistinguishable from one
made during clone, so a background thread makes a few in advance: it unshares
its own network namespace (allowed per thread), brings ``lo`` up, keeps an fd,
and switches back.  A container then joins one with setns, which costs
microseconds.  Only containers without a new user namespace use the pool (a
user namespace must own its network namespace).

The pool holds at most ``PYCONTAINER_NETNS_POOL`` namespaces (default 4; 0
turns it off).  Nothing of it is visible on the host but those fds; they go
away with the process.
"""

from __future__ import annotations

import collections
import os
import threading

from ._shim import lib


def _size() -> int:
    try:
        return max(0, int(os.environ.get("PYCONTAINER_NETNS_POOL", "4")))
    except ValueError:
        return 4


class NetnsPool:
    def __init__(self, size: int) -> None:
        self.size = size
        self._fds: collections.deque[int] = collections.deque()
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None
        self._broken = False

    def take(self) -> int | None:
        """A fresh network namespace fd (the caller owns it), or None when empty."""
        if self.size == 0 or self._broken:
            return None
        with self._lock:
            fd = self._fds.popleft() if self._fds else None
            if self._thread is None:
                self._thread = threading.Thread(target=self._fill, name="pycontainer-netns-pool", daemon=True)
                self._thread.start()
        if fd is None:
            self._wanted.set()
        return fd

    def kick(self) -> None:
        """Refill now.  Called once a container is set up (for ``run``, once
        its GO is sent), so that making the next namespaces does not compete
        with this one's setup for the CPU and the kernel's locks."""
        if self.size and not self._broken:
            self._wanted.set()

    def _fill(self) -> None:
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            while True:
                self._wanted.wait()
                while True:
                    with self._lock:
                        if len(self._fds) >= self.size:
                            self._wanted.clear()
                            break
                    fd = lib.pc_new_netns(back)
                    if fd < 0:
                        self._broken = True  # this thread may sit in a wrong namespace: stop
                        return
                    with self._lock:
                        self._fds.append(fd)
        finally:
            os.close(back)

    def _after_fork_in_child(self) -> None:
        # The filler thread did not survive fork, and the parent owns these
        # namespaces: never hand the same one out twice.
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._thread = None


def new_netns() -> int:
    """A fresh network namespace (lo up), made in a thread of its own (which
    unshares and comes back; should it fail to come back, only it is lost)."""
    out: list[int] = []

    def make() -> None:
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            out.append(lib.pc_new_netns(back))
        finally:
            os.close(back)

    t = threading.Thread(target=make, name="pycontainer-netns")
    t.start()
    t.join()
    if not out or out[0] < 0:
        raise OSError(-(out[0] if out else -5), "cannot make a network namespace")
    return out[0]


POOL = NetnsPool(_size())
os.register_at_fork(after_in_child=POOL._after_fork_in_child)
