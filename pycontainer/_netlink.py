"""A small synchronous rtnetlink client: one plain netlink socket carries
the requests, and each waits for its own acknowledgement.  The few requests
of a container's start (a veth pair, an address, a route, a link up, a link
looked up) are packed here with ``struct``; pyroute2 decodes the dumps
(links, routes).  pyroute2's encoder took 0.55 ms of a container's bridge
set-up (its veth request alone 0.34 ms); ``tests/test_netlink_pack.py``
checks that these bytes are the ones pyroute2 would send.

Why not pyroute2's ``IPRoute``: its 0.9 core runs an asyncio loop per thread
(about 0.7 ms a request here) and reaches another network namespace by
forking a child that passes a socket back (about 13 ms).  A netlink socket
belongs to the namespace of the thread that made it, so here a short-lived
thread joins the namespace (setns affects only that thread), makes the
socket and ends; the socket then works from any thread."""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import itertools
import os
import queue
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.rtnl import RTM_DELLINK, RTM_GETLINK, RTM_GETROUTE, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from ._shim import lib

CLONE_NEWNET = 0x40000000
IFF_UP = 1
_T = TypeVar("_T")


def in_netns(path: str | None, fn: Callable[[], _T]) -> _T:
    """``fn()`` run in the network namespace at ``path`` (None: ours), by a
    thread that joins it (setns changes only the calling thread's), so no
    other thread changes namespace."""
    if path is None:
        return fn()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return in_netns_fd(fd, fn)
    finally:
        os.close(fd)


_visiting = threading.local()  # set in the threads that run in another namespace


def in_netns_fd(fd: int, fn: Callable[[], _T]) -> _T:
    if not getattr(_visiting, "on", False):
        result = _worker.run(fd, fn)
        if result is not _BROKEN:
            return result
    return _in_new_thread(fd, fn)  # nested, or the worker is gone


def _in_new_thread(fd: int, fn: Callable[[], _T]) -> _T:
    out: list[_T | BaseException] = []

    def run() -> None:
        _visiting.on = True
        r = lib.pc_setns(fd, CLONE_NEWNET)
        if r < 0:
            out.append(OSError(-r, f"setns into a network namespace: {os.strerror(-r)}"))
            return
        try:
            out.append(fn())
        except BaseException as e:  # handed to the caller's thread
            out.append(e)

    t = threading.Thread(target=run, name="pycontainer-netns")
    t.start()
    t.join()
    return _unbox(out)


def _unbox(out: list[_T | BaseException]) -> _T:
    result = out[0]
    if isinstance(result, BaseException):
        raise result
    return result


_BROKEN: Any = object()


class _Worker:
    """One long-lived thread that visits network namespaces for the others:
    it joins the target, runs the job, and goes back to the process's own
    namespace; a job costs a hand-over instead of a thread's start (some
    0.2 ms).  Should it ever fail to go back, it stops and the callers start
    threads of their own.  Each job carries its own copy of the namespace fd,
    so a caller that gives up waiting cannot have its fd reused under it."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[int, Callable[[], Any], list[Any], threading.Event]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.broken = False
        os.register_at_fork(after_in_child=self._after_fork)

    def run(self, fd: int, fn: Callable[[], _T]) -> _T:
        box: list[_T | BaseException] = []
        done = threading.Event()
        with self._lock:
            if self.broken:
                return _BROKEN  # type: ignore[no-any-return]
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="pycontainer-netns", daemon=True)
                self.thread.start()
            self._jobs.put((os.dup(fd), fn, box, done))
        done.wait()
        return _unbox(box)

    def _loop(self) -> None:
        _visiting.on = True
        # home: the process's namespace (the main thread's), whatever the
        # namespace of the thread that happened to start this one
        home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if lib.pc_setns(home, CLONE_NEWNET) < 0:
            self._stop()
            return
        while True:
            fd, fn, box, done = self._jobs.get()
            try:
                r = lib.pc_setns(fd, CLONE_NEWNET)
                if r < 0:
                    box.append(OSError(-r, f"setns into a network namespace: {os.strerror(-r)}"))
                    continue
                try:
                    box.append(fn())
                except BaseException as e:  # handed to the caller's thread
                    box.append(e)
                if lib.pc_setns(home, CLONE_NEWNET) < 0:
                    self._stop()
                    return
            finally:
                os.close(fd)
                done.set()

    def _stop(self) -> None:
        # Broken: no job is queued any more, and those queued meanwhile run
        # in threads of their own.
        with self._lock:
            self.broken = True
        while True:
            try:
                fd, fn, box, done = self._jobs.get_nowait()
            except queue.Empty:
                return
            try:
                box.append(_in_new_thread(fd, fn))
            except BaseException as e:
                box.append(e)
            finally:
                os.close(fd)
                done.set()

    def _after_fork(self) -> None:
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.thread = None


_worker = _Worker()


_NLMSG = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_NLA = struct.Struct("=HH")  # nlattr: len, type
IFLA_LINK = 5
NLM_F_ECHO = 0x8


def _u32_attr(msg: bytes, offset: int, kind: int) -> int | None:
    """The u32 attribute ``kind`` among a message's top-level attributes."""
    while offset + _NLA.size <= len(msg):
        length, t = _NLA.unpack_from(msg, offset)
        if length < _NLA.size:
            return None
        if t & 0x3FFF == kind and length >= _NLA.size + 4:
            return int(struct.unpack_from("=I", msg, offset + _NLA.size)[0])
        offset += (length + 3) & ~3
    return None


_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags

# Attribute types (linux/if_link.h, if_addr.h, rtnetlink.h, veth.h: kernel ABI)
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_OIF, RTA_GATEWAY = 4, 5


def _nla(kind: int, payload: bytes) -> bytes:
    """One netlink attribute: its header, the payload, padded to 4 bytes."""
    n = _NLA.size + len(payload)
    return _NLA.pack(n, kind) + payload + b"\0" * (-n % 4)


def _nla_str(kind: int, text: str) -> bytes:
    return _nla(kind, text.encode() + b"\0")


def _nla_u32(kind: int, value: int) -> bytes:
    return _nla(kind, struct.pack("=I", value))


def _ip(address: str) -> tuple[int, bytes]:
    ip = ipaddress.ip_address(address)
    return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), ip.packed


def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


class Rtnl:
    """One rtnetlink socket, in the namespace it was made in.  The requests
    are packed here (see the module docstring); replies are read straight
    off the socket (an ack is a 20-byte header and an errno: no decoder
    needed), and pyroute2 decodes those of the dumps."""

    def __init__(self) -> None:
        self._s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        self._s.bind((0, 0))
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    @classmethod
    def in_netns_fd(cls, fd: int) -> Rtnl:
        return in_netns_fd(fd, cls)

    @classmethod
    def at(cls, path: str | None) -> Rtnl:
        return in_netns(path, cls)

    def close(self) -> None:
        self._s.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, body: bytes, kind: int, flags: int) -> list[bytes]:
        """Send one request (``body``: the message after its netlink header);
        the replies (whole messages, raw) up to the acknowledgement (or the
        end of a dump, or the error, raised as OSError with the kernel's
        errno)."""
        with self._lock:
            seq = next(self._seq)
            self._s.send(_NLMSG.pack(_NLMSG.size + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body)
            replies: list[bytes] = []
            while True:
                data = self._s.recv(1 << 16)
                off = 0
                while off + _NLMSG.size <= len(data):
                    length, mtype, _, mseq, _ = _NLMSG.unpack_from(data, off)
                    if length < _NLMSG.size:
                        break
                    start = off
                    off += (length + 3) & ~3
                    if mseq != seq:
                        continue
                    if mtype == NLMSG_DONE:
                        return replies
                    if mtype == NLMSG_ERROR:
                        code = -struct.unpack_from("=i", data, start + _NLMSG.size)[0]
                        if code:
                            raise OSError(code, os.strerror(code))
                        return replies
                    replies.append(data[start : start + length])

    # ---- links --------------------------------------------------------------------------

    def link(self, name: str) -> tuple[int, bool] | None:
        """(index, up) of the link ``name``, or None."""
        try:
            replies = self._call(_IFINFO.pack(0, 0, 0, 0, 0) + _nla_str(IFLA_IFNAME, name), RTM_GETLINK, 0)
        except OSError as e:
            if e.errno == 19:  # ENODEV
                return None
            raise
        if not replies:
            return None
        _, _, index, flags, _ = _IFINFO.unpack_from(replies[0], _NLMSG.size)
        return index, bool(flags & IFF_UP)

    def index(self, name: str) -> int | None:
        """The index of the link ``name``, or None.  (Not by
        ioctl(SIOCGIFINDEX), though it is faster: for a name no link has,
        the kernel runs modprobe, twice, to look for a driver of that name,
        and a link looked up here is usually one that is gone.)"""
        link = self.link(name)
        return None if link is None else link[0]

    def add_bridge(self, name: str, mtu: int) -> None:
        body = (
            _IFINFO.pack(0, 0, 0, 0, 0)
            + _nla_str(IFLA_IFNAME, name)
            + _nla_u32(IFLA_MTU, mtu)
            + _nla(IFLA_LINKINFO, _nla_str(IFLA_INFO_KIND, "bridge"))
        )
        self._call(body, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)

    def add_veth(
        self, name: str, peer: str, peer_netns_fd: int, mtu: int, master: int, peer_mac: str | None = None
    ) -> int | None:
        """A veth pair: ``name`` here, enslaved to ``master`` and up; ``peer``
        made directly in the namespace ``peer_netns_fd`` (no move between
        namespaces, which costs the kernel an RCU grace period).  The peer's
        index, where the kernel says it."""
        peer_attrs = _nla_str(IFLA_IFNAME, peer) + _nla_u32(IFLA_MTU, mtu) + _nla_u32(IFLA_NET_NS_FD, peer_netns_fd)
        if peer_mac is not None:
            peer_attrs += _nla(IFLA_ADDRESS, _mac(peer_mac))
        # (the peer's attribute carries an ifinfomsg of its own, then its attributes)
        peer_info = _nla(VETH_INFO_PEER, _IFINFO.pack(0, 0, 0, 0, 0) + peer_attrs)
        info = _nla_str(IFLA_INFO_KIND, "veth") + _nla(IFLA_INFO_DATA, peer_info)
        body = (
            _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP)
            + _nla_str(IFLA_IFNAME, name)
            + _nla_u32(IFLA_MTU, mtu)
            + _nla_u32(IFLA_MASTER, master)
            + _nla(IFLA_LINKINFO, info)
        )
        # NLM_F_ECHO: the kernel (6.3+) sends the new link back, and its
        # IFLA_LINK is the peer's index, which spares a lookup over there.
        for reply in self._call(body, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO):
            peer_index = _u32_attr(reply, _NLMSG.size + _IFINFO.size, IFLA_LINK)
            if peer_index:
                return peer_index
        return None

    def set_up(self, index: int) -> None:
        self._call(_IFINFO.pack(0, 0, index, IFF_UP, IFF_UP), RTM_NEWLINK, 0)

    def delete(self, index: int) -> None:
        self._call(_IFINFO.pack(0, 0, index, 0, 0), RTM_DELLINK, 0)

    def links(self) -> list[str]:
        names = []
        for body in self._call(_IFINFO.pack(0, 0, 0, 0, 0), RTM_GETLINK, NLM_F_DUMP):
            m = ifinfmsg(body)
            m.decode()
            names.append(m.get_attr("IFLA_IFNAME"))
        return sorted(names)

    # ---- addresses and routes ----------------------------------------------------------

    def routes(self) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
        """(destination, link name) of the main table's routes but the default ones."""
        names = {}
        for body in self._call(_IFINFO.pack(0, 0, 0, 0, 0), RTM_GETLINK, NLM_F_DUMP):
            m = ifinfmsg(body)
            m.decode()
            names[m["index"]] = m.get_attr("IFLA_IFNAME")
        out = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for body in self._call(_RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0), RTM_GETROUTE, NLM_F_DUMP):
                m = rtmsg(body)
                m.decode()
                dst = m.get_attr("RTA_DST")
                if m["table"] != 254 or m["type"] != 1 or not dst or not m["dst_len"]:
                    continue
                net = ipaddress.ip_network(f"{dst}/{m['dst_len']}", strict=False)
                if not net.is_link_local:
                    out.append((net, str(names.get(m.get_attr("RTA_OIF"), "?"))))
        return out

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        family, packed = _ip(address)
        flags = 0x2 if family == socket.AF_INET6 else 0  # IFA_F_NODAD: usable at once; the subnet is ours alone
        body = _IFADDR.pack(family, prefixlen, flags, 0, index) + _nla(IFA_LOCAL, packed) + _nla(IFA_ADDRESS, packed)
        try:
            self._call(body, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)
        except FileExistsError:
            pass

    def add_default_route(self, gateway: str, index: int) -> None:
        family, packed = _ip(gateway)
        # table main (254), protocol static (4), scope universe (0), type unicast (1)
        body = _RTMSG.pack(family, 0, 0, 0, 254, 4, 0, 1, 0) + _nla(RTA_GATEWAY, packed) + _nla_u32(RTA_OIF, index)
        self._call(body, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL)


def ns_key(path: str | None) -> tuple[int, int] | None:
    """What identifies the namespace at ``path`` (None: ours)."""
    if path is None:
        return None
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


class NsCache(Generic[_T]):
    """Objects bound to a network namespace (a netlink socket, a libnftables
    context), kept for the next container: making one costs from half a
    millisecond to several.  Keyed by the namespace's inode, so a recycled
    path never finds another namespace's object; only a few are kept, as
    each keeps its namespace alive.  One is made at a time (threads that
    miss together do not each make one), and an evicted one is closed only
    once no thread uses it any more."""

    def __init__(self, make: Callable[[], _T], close: Callable[[_T], None], keep: int = 4) -> None:
        self._make, self._close, self._keep = make, close, keep
        self._items: collections.OrderedDict[tuple[int, int] | None, list[Any]] = collections.OrderedDict()
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._after_fork)

    @contextlib.contextmanager
    def use(self, path: str | None) -> Iterator[_T]:
        key = ns_key(path)
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                entry = [in_netns(path, self._make), 0, False]  # object, users, evicted
                self._items[key] = entry
                while len(self._items) > self._keep:
                    old = self._items.popitem(last=False)[1]
                    old[2] = True
                    if old[1] == 0:
                        self._close(old[0])
            else:
                self._items.move_to_end(key)
            entry[1] += 1
        try:
            yield entry[0]
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[2] and entry[1] == 0:
                    self._close(entry[0])

    def _after_fork(self) -> None:
        # The parent's objects (their sockets, their sequence numbers) are not
        # the child's to use; they are forgotten, not closed or freed (a
        # libnftables context is the parent's memory too).
        self._lock = threading.Lock()
        self._items.clear()


_hosts: NsCache[Rtnl] = NsCache(Rtnl, Rtnl.close)


def host(path: str | None) -> contextlib.AbstractContextManager[Rtnl]:
    """A kept netlink socket in the namespace at ``path`` (None: ours), for a ``with``."""
    return _hosts.use(path)
