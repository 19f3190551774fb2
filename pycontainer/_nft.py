"""pycontainer's nftables table, through libnftables' JSON API (loaded with
cffi in ABI mode: only libnftables1, no headers, is needed).

One table, ``inet pycontainer``, holds everything and nothing else is ever
touched.  Its rules are fixed; what changes are the elements of its sets and
maps, so a container's or a network's rules come and go as elements, each
change one atomic nftables transaction:

- ``bridges`` (ifname), ``same`` (ifname . ifname), ``nets4`` and
  ``nets6`` (subnets):
  masquerade of what leaves a network for anywhere but a pycontainer bridge,
  and no forwarding between two different pycontainer bridges;
- ``ports4`` (proto . port -> address . port): ports published on every
  local address, 127.0.0.1 included; ``ports4ip`` (host ip . proto . port ->
  address . port): ports published on one address."""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

from . import _netlink
from .errors import NetworkError

TABLE = "pycontainer"
_CDEF = """
struct nft_ctx;
struct nft_ctx *nft_ctx_new(uint32_t flags);
void nft_ctx_free(struct nft_ctx *ctx);
void nft_ctx_output_set_flags(struct nft_ctx *ctx, unsigned int flags);
int nft_ctx_buffer_output(struct nft_ctx *ctx);
const char *nft_ctx_get_output_buffer(struct nft_ctx *ctx);
int nft_ctx_buffer_error(struct nft_ctx *ctx);
const char *nft_ctx_get_error_buffer(struct nft_ctx *ctx);
int nft_run_cmd_from_buffer(struct nft_ctx *nft, const char *buf);
"""
_OUTPUT_JSON = 1 << 4
_lib: Any = None
_ffi: Any = None
_lib_lock = threading.Lock()


def _load() -> tuple[Any, Any]:
    global _lib, _ffi
    with _lib_lock:
        if _lib is None:
            import cffi

            ffi = cffi.FFI()
            ffi.cdef(_CDEF)
            try:
                _lib = ffi.dlopen("libnftables.so.1")
            except OSError as e:
                raise NetworkError(f"libnftables is missing (Debian: apt-get install libnftables1): {e}") from None
            _ffi = ffi
    return _ffi, _lib


class _NftError(NetworkError):
    pass


class _Ctx:
    """A libnftables context, made in (and so talking to) one network
    namespace's netfilter; not thread-safe, hence the lock.  Kept between
    calls: making one and fetching the ruleset cache costs milliseconds."""

    def __init__(self) -> None:
        ffi, lib = _load()
        self.ffi, self.lib = ffi, lib
        self.ctx = lib.nft_ctx_new(0)
        if self.ctx == ffi.NULL:
            raise NetworkError("libnftables: cannot make a context")
        lib.nft_ctx_output_set_flags(self.ctx, _OUTPUT_JSON)
        lib.nft_ctx_buffer_output(self.ctx)
        lib.nft_ctx_buffer_error(self.ctx)
        self.lock = threading.Lock()
        self.table_ready = False
        self.run_text('{"nftables": [{"list": {"tables": {"family": "inet"}}}]}')  # its socket opens here, now

    def run_text(self, text: str) -> str:
        with self.lock:
            rc = self.lib.nft_run_cmd_from_buffer(self.ctx, text.encode())
            if rc != 0:
                err = self.ffi.string(self.lib.nft_ctx_get_error_buffer(self.ctx)).decode(errors="replace").strip()
                raise _NftError(err or f"nftables failed ({rc})")
            return str(self.ffi.string(self.lib.nft_ctx_get_output_buffer(self.ctx)).decode())

    def run(self, commands: list[dict[str, Any]]) -> Any:
        """One nftables transaction, in JSON."""
        out = self.run_text(json.dumps({"nftables": commands}))
        return json.loads(out) if out.strip() else None

    def free(self) -> None:
        self.lib.nft_ctx_free(self.ctx)


_ctxs: _netlink.NsCache[_Ctx] = _netlink.NsCache(_Ctx, _Ctx.free)
generation = 0  # how many times this process made the table: a bridge cached as complete before is not any more


def run(host_netns: str | None, commands: list[dict[str, Any]]) -> Any:
    with _ctxs.use(host_netns) as c:
        return c.run(commands)


# The fixed part of the table, in nft's own syntax, parsed by the same
# libnftables: its 1.0.x JSON parser crashes (SIGSEGV, in-process!) on a dnat
# whose address and port come from a map keyed by a concatenation, the very
# rule published ports need.  Everything that changes (elements) and every
# read goes through JSON.
_TABLE_TEXT = """
table inet pycontainer {
    set layout2 { type ifname; }  # which layout of this table this is (see _ensure_table)
    set bridges { type ifname; }
    set same { type ifname . ifname; }
    set nets4 { type ipv4_addr; flags interval; }
    set nets6 { type ipv6_addr; flags interval; }
    map ports4 { type inet_proto . inet_service : ipv4_addr . inet_service; }
    map ports4ip { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
    chain raw {
        type filter hook prerouting priority -300; policy accept;
        # 127/8 only from the host itself: with route_localnet on the bridges
        # (for published ports on 127.0.0.1), a container or a neighbour
        # could otherwise reach the host's loopback services or a port
        # published on 127.0.0.1 only (CVE-2020-8558)
        iifname != "lo" ip daddr 127.0.0.0/8 drop
        # nor from 127/8 (route_localnet lets such sources in too)
        iifname != "lo" ip saddr 127.0.0.0/8 drop
    }
    chain prerouting {
        type nat hook prerouting priority -100; policy accept;
        fib daddr type local dnat ip to meta l4proto . th dport map @ports4
        dnat ip to ip daddr . meta l4proto . th dport map @ports4ip
    }
    chain output {
        type nat hook output priority -100; policy accept;
        fib daddr type local dnat ip to meta l4proto . th dport map @ports4
        dnat ip to ip daddr . meta l4proto . th dport map @ports4ip
    }
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        # what leaves a network for the outside goes out with the host's address
        ip saddr @nets4 oifname != @bridges masquerade
        ip6 saddr @nets6 oifname != @bridges masquerade
        # a published port reached on 127.0.0.1: the reply must come back to us
        ip saddr 127.0.0.0/8 oifname @bridges masquerade
        # a published port reached from a network (hairpin): replies come back through us
        ct status dnat ip saddr @nets4 oifname @bridges masquerade
    }
    chain forward {
        type filter hook forward priority 0; policy accept;
        # published ports, and replies to what containers started
        ct status dnat accept
        oifname @bridges ct state established,related accept
        # networks do not reach each other
        iifname @bridges oifname @bridges iifname . oifname != @same drop
        # nor does the outside reach what is not published
        oifname @bridges iifname != @bridges drop
    }
}
"""


LAYOUT = "layout2"


def _ensure_table(c: _Ctx) -> bool:
    """The table, made in one transaction if missing, or replaced if it is of
    an older layout (``create`` fails if another process made it meanwhile:
    then it is there, and that is fine).  Whether it had to be made (its
    elements are gone then)."""
    global generation
    if c.table_ready:
        return False
    made = False
    try:
        c.run([{"list": {"set": {"family": "inet", "table": TABLE, "name": LAYOUT}}}])
    except _NftError:
        old = True
        try:
            c.run([{"list": {"table": {"family": "inet", "name": TABLE}}}])
        except _NftError:
            old = False
        try:
            c.run_text(
                ("delete table inet pycontainer\n" if old else "") + "create table inet pycontainer\n" + _TABLE_TEXT
            )
            made = True
            generation += 1
        except _NftError:
            c.run([{"list": {"set": {"family": "inet", "table": TABLE, "name": LAYOUT}}}])  # raises if still missing
    c.table_ready = True
    return made


def ns_id(host_netns: str | None) -> tuple[int, int] | None:
    return _netlink.ns_key(host_netns)


def has_bridge(host_netns: str | None, bridge: str) -> bool:
    """Is ``bridge`` among the table's bridges?  (The table is made, or
    replaced if it is of an older layout, first: False then.)"""
    try:
        with _ctxs.use(host_netns) as c:
            c.table_ready = False  # look again: someone may have removed it
            if _ensure_table(c):
                return False
            out = c.run([{"list": {"set": {"family": "inet", "table": TABLE, "name": "bridges"}}}])
    except (_NftError, OSError) as e:
        raise NetworkError(f"nftables: {e}") from None
    for item in (out or {}).get("nftables", []):
        if "set" in item:
            return bridge in item["set"].get("elem", [])
    return False


def _change(host_netns: str | None, commands: list[dict[str, Any]]) -> bool:
    """Elements added or deleted, one transaction; should the table have been
    removed behind our back, it is made again and the change retried.
    Whether the table had to be made (its elements are then gone)."""
    with _ctxs.use(host_netns) as c:
        made = _ensure_table(c)
        try:
            c.run(commands)
        except _NftError:
            c.table_ready = False
            made = _ensure_table(c) or made
            c.run(commands)
        return made


def _elem(kind: str, name: str, elems: list[Any]) -> dict[str, Any]:
    return {kind: {"element": {"family": "inet", "table": TABLE, "name": name, "elem": elems}}}


def _prefix(subnet: str) -> dict[str, Any]:
    addr, _, plen = subnet.partition("/")
    return {"prefix": {"addr": addr, "len": int(plen)}}


def _net_elems(bridge: str, subnet: str, subnet6: str | None) -> list[tuple[str, list[Any]]]:
    elems: list[tuple[str, list[Any]]] = [
        ("bridges", [bridge]),
        ("same", [{"concat": [bridge, bridge]}]),
        ("nets4", [_prefix(subnet)]),
    ]
    return elems + ([("nets6", [_prefix(subnet6)])] if subnet6 else [])


def add_network(host_netns: str | None, bridge: str, subnet: str, subnet6: str | None = None) -> bool:
    """The table (made if missing) and the network's elements in it; whether
    the table had to be made."""
    try:
        return _change(host_netns, [_elem("add", n, e) for n, e in _net_elems(bridge, subnet, subnet6)])
    except (_NftError, OSError) as e:
        raise NetworkError(f"nftables rules of bridge {bridge}: {e}") from None


def remove_network(host_netns: str | None, bridge: str, subnet: str, subnet6: str | None = None) -> None:
    with _ctxs.use(host_netns) as c:
        for n, e in _net_elems(bridge, subnet, subnet6):
            with contextlib.suppress(_NftError):  # not there (the table or the element)
                c.run([_elem("delete", n, e)])


def _port_elem(host_ip: str | None, proto: str, host_port: int, address: str, port: int) -> tuple[str, list[Any]]:
    value = {"concat": [address, port]}
    if host_ip is None:
        return "ports4", [[{"concat": [proto, host_port]}, value]]
    return "ports4ip", [[{"concat": [host_ip, proto, host_port]}, value]]


Port = tuple[str | None, str, int, str, int]  # host ip or None, proto, host port, address, port


def add_ports(host_netns: str | None, ports: list[Port], verb: str = "create") -> bool:
    """Publish each port, all or none; with ``create`` an element that
    exists already is an error.  Whether the table had to be made."""
    if not ports:
        return False
    try:
        return _change(host_netns, [_elem(verb, *_port_elem(*p)) for p in ports])
    except (_NftError, OSError) as e:
        raise NetworkError(f"publishing ports: {e}") from None


def remove_ports(host_netns: str | None, ports: list[Port]) -> None:
    if not ports:
        return
    commands = []
    for p in ports:
        name, elems = _port_elem(*p)
        commands.append(_elem("delete", name, [e[0] for e in elems]))
    with _ctxs.use(host_netns) as c:
        try:
            c.run(commands)
        except _NftError:
            for cmd in commands:  # one by one: those still there
                with contextlib.suppress(_NftError):
                    c.run([cmd])


def published(host_netns: str | None) -> set[tuple[str | None, str, int]]:
    """Every port the table publishes, whoever published it (another state
    root too): (host ip or None for every address, proto, host port).  None
    when there is no table yet."""
    try:
        with _ctxs.use(host_netns) as c:
            out = c.run([{"list": {"table": {"family": "inet", "name": TABLE}}}])
    except _NftError:
        return set()  # no table: nothing published
    except OSError as e:
        raise NetworkError(f"nftables: {e}") from None
    held: set[tuple[str | None, str, int]] = set()
    for item in (out or {}).get("nftables", []):
        m = item.get("map")
        if not m or m.get("name") not in ("ports4", "ports4ip"):
            continue
        for key, _value in m.get("elem", []):
            parts = key["concat"]
            if m["name"] == "ports4":
                held.add((None, str(parts[0]), int(parts[1])))
            else:
                held.add((str(parts[0]), str(parts[1]), int(parts[2])))
    return held


def sysctl(host_netns: str | None, items: dict[str, str]) -> None:
    """Write net sysctls (``ipv4/ip_forward``...) in the host namespace: the
    files under /proc/sys/net are those of the namespace of the thread that
    opens them."""

    def go() -> None:
        for key, value in items.items():
            with open(f"/proc/sys/net/{key}", "w") as f:
                f.write(value)

    try:
        _netlink.in_netns(host_netns, go)
    except OSError as e:
        raise NetworkError(f"setting {', '.join(items)}: {e}") from None
