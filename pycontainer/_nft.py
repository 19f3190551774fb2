"""pycontainer's nftables table, through libnftables' JSON API (loaded with
cffi in ABI mode: only libnftables1, no headers, is needed).

One table, ``inet pycontainer``, holds everything and nothing else is ever
touched.  Its rules are fixed; what changes are the elements of its sets and
maps, so a container's or a network's rules come and go as elements, each
change one atomic nftables transaction:

- ``bridges`` (ifname), ``same`` (ifname . ifname), ``nets4`` (subnets):
  masquerade of what leaves a network for anywhere but a pycontainer bridge,
  and no forwarding between two different pycontainer bridges;
- ``ports4`` (proto . port -> address . port): ports published on every
  local address, 127.0.0.1 included; ``ports4ip`` (host ip . proto . port ->
  address . port): ports published on one address."""

from __future__ import annotations

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


def _run(commands: list[dict[str, Any]]) -> Any:
    """One nftables transaction (JSON), in the calling thread's namespace."""
    out = _run_text(json.dumps({"nftables": commands}))
    return json.loads(out) if out.strip() else None


def _run_text(text: str) -> str:
    ffi, lib = _load()
    ctx = lib.nft_ctx_new(0)
    if ctx == ffi.NULL:
        raise NetworkError("libnftables: cannot make a context")
    try:
        lib.nft_ctx_output_set_flags(ctx, _OUTPUT_JSON)
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        rc = lib.nft_run_cmd_from_buffer(ctx, text.encode())
        if rc != 0:
            err = ffi.string(lib.nft_ctx_get_error_buffer(ctx)).decode(errors="replace").strip()
            raise _NftError(err or f"nftables failed ({rc})")
        return str(ffi.string(lib.nft_ctx_get_output_buffer(ctx)).decode())
    finally:
        lib.nft_ctx_free(ctx)


class _NftError(NetworkError):
    pass


def run(host_netns: str | None, commands: list[dict[str, Any]]) -> Any:
    return _netlink.in_netns(host_netns, lambda: _run(commands))


# ---- the table -------------------------------------------------------------------------


# The fixed part of the table, in nft's own syntax, parsed by the same
# libnftables: its 1.0.x JSON parser crashes (SIGSEGV, in-process!) on a dnat
# whose address and port come from a map keyed by a concatenation, the very
# rule published ports need.  Everything that changes (elements) and every
# read goes through JSON.
_TABLE_TEXT = """
table inet pycontainer {
    set bridges { type ifname; }
    set same { type ifname . ifname; }
    set nets4 { type ipv4_addr; flags interval; }
    map ports4 { type inet_proto . inet_service : ipv4_addr . inet_service; }
    map ports4ip { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
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
        # a published port reached on 127.0.0.1: the reply must come back to us
        ip saddr 127.0.0.0/8 oifname @bridges masquerade
    }
    chain forward {
        type filter hook forward priority 0; policy accept;
        # networks do not reach each other
        iifname @bridges oifname @bridges iifname . oifname != @same drop
    }
}
"""


def _exists() -> bool:
    try:
        _run([{"list": {"table": {"family": "inet", "name": TABLE}}}])
        return True
    except _NftError:
        return False


def _ensure_table() -> None:
    """The table, made in one transaction if missing (``create`` fails if
    another process made it meanwhile: then it is there, and that is fine)."""
    if _exists():
        return
    try:
        _run_text("create table inet pycontainer\n" + _TABLE_TEXT)
    except _NftError:
        if not _exists():
            raise


def _elem(kind: str, name: str, elems: list[Any]) -> dict[str, Any]:
    return {kind: {"element": {"family": "inet", "table": TABLE, "name": name, "elem": elems}}}


def _net_elems(bridge: str, subnet: str) -> list[tuple[str, list[Any]]]:
    addr, _, plen = subnet.partition("/")
    return [
        ("bridges", [bridge]),
        ("same", [{"concat": [bridge, bridge]}]),
        ("nets4", [{"prefix": {"addr": addr, "len": int(plen)}}]),
    ]


def add_network(host_netns: str | None, bridge: str, subnet: str) -> None:
    """The table (made if missing) and the network's elements in it."""

    def go() -> None:
        _ensure_table()
        _run([_elem("add", n, e) for n, e in _net_elems(bridge, subnet)])

    try:
        _netlink.in_netns(host_netns, go)
    except _NftError as e:
        raise NetworkError(f"nftables rules of bridge {bridge}: {e}") from None


def remove_network(host_netns: str | None, bridge: str, subnet: str) -> None:
    def go() -> None:
        for n, e in _net_elems(bridge, subnet):
            try:
                _run([_elem("delete", n, e)])
            except _NftError:
                pass  # not there (the table or the element)

    _netlink.in_netns(host_netns, go)


def _port_elem(host_ip: str | None, proto: str, host_port: int, address: str, port: int) -> tuple[str, list[Any]]:
    value = {"concat": [address, port]}
    if host_ip is None:
        return "ports4", [[{"concat": [proto, host_port]}, value]]
    return "ports4ip", [[{"concat": [host_ip, proto, host_port]}, value]]


def add_ports(host_netns: str | None, ports: list[tuple[str | None, str, int, str, int]]) -> None:
    """Publish (host ip or None, proto, host port, address, port) each, all
    or none; an element that exists already is an error (``create``)."""
    if not ports:
        return

    def go() -> None:
        _ensure_table()
        _run([_elem("create", *_port_elem(*p)) for p in ports])

    try:
        _netlink.in_netns(host_netns, go)
    except _NftError as e:
        raise NetworkError(f"publishing ports: {e}") from None


def remove_ports(host_netns: str | None, ports: list[tuple[str | None, str, int, str, int]]) -> None:
    def go() -> None:
        for p in ports:
            name, elems = _port_elem(*p)
            try:
                _run([_elem("delete", name, [e[0] for e in elems])])
            except _NftError:
                pass

    if ports:
        _netlink.in_netns(host_netns, go)


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
