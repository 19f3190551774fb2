"""Device rules: the lines cgroup v1's devices.allow/deny take, and for
cgroup v2 an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) that decides the same.

Rules follow OCI order: a later rule wins over an earlier one.  A device no
rule names is allowed, as in a fresh v1 devices cgroup (which inherits its
parent's allow-all); pycontainer's default rules start with a deny-all.
"""

from __future__ import annotations

import functools
import os
import struct
import threading

from ..config import DeviceRule
from ..errors import CgroupError

# ---- v1 -------------------------------------------------------------------------


def _num(n: int | None) -> str:
    return "*" if n is None else str(n)


def v1_writes(rules: tuple[DeviceRule, ...]) -> list[tuple[str, str]]:
    """(file, line) pairs to write in order.  An "a" rule with partial access
    is not expressible in v1 ("a" always means every device, every access):
    it becomes a "c" and a "b" rule, as runc does."""
    out: list[tuple[str, str]] = []
    first = rules[0] if rules else None
    full_a = (
        first is not None
        and first.type == "a"
        and first.major is None
        and first.minor is None
        and set(first.access) == set("rwm")
    )
    if not full_a:
        # Start from allow-all, as OCI's "no rule: allowed" and our model of
        # v1 assume, whatever the cgroup held before (its parent's rules).
        out.append(("devices.allow", "a"))
    for r in rules:
        file = "devices.allow" if r.allow else "devices.deny"
        if r.type == "a" and r.major is None and r.minor is None and set(r.access) == set("rwm"):
            out.append((file, "a"))
        elif r.type == "a":
            for kind in ("c", "b"):
                out.append((file, f"{kind} {_num(r.major)}:{_num(r.minor)} {r.access}"))
        else:
            out.append((file, f"{r.type} {_num(r.major)}:{_num(r.minor)} {r.access}"))
    return out


# The kernel's v1 semantics, to check that the files mean what the rules say.
# A v1 devices cgroup is a default (allow or deny all) plus exceptions.  A
# rule against the default adds an exception (merging its access into one
# with the same type:major:minor); a rule agreeing with the default only
# takes access away from an exception that is *exactly* the same
# type, major and minor.  So "deny c 10:200" after "allow c *:*" on a deny-all
# cgroup does nothing on v1, where OCI's "later rule wins" denies 10:200.

Exc = tuple[str, int | None, int | None, int]  # an exception to the default: type, major, minor, access mask


def v1_state(writes: list[tuple[str, str]]) -> tuple[bool, list[Exc]]:
    """What the kernel holds after ``writes``: (default allows, exceptions)."""
    allow_default = True
    exceptions: list[Exc] = []
    for file, line in writes:
        allow = file == "devices.allow"
        if line == "a":
            allow_default, exceptions = allow, []
            continue
        kind, numbers, access = line.split()
        major_s, minor_s = numbers.split(":")
        major = None if major_s == "*" else int(major_s)
        minor = None if minor_s == "*" else int(minor_s)
        mask = _mask(access)
        same = [i for i, e in enumerate(exceptions) if e[:3] == (kind, major, minor)]
        if allow != allow_default:  # an exception to the default
            if same:
                k, ma, mi, acc = exceptions[same[0]]
                exceptions[same[0]] = (k, ma, mi, acc | mask)
            else:
                exceptions.append((kind, major, minor, mask))
        elif same:  # back to the default: access leaves an exact match only
            k, ma, mi, acc = exceptions[same[0]]
            if acc & ~mask:
                exceptions[same[0]] = (k, ma, mi, acc & ~mask)
            else:
                del exceptions[same[0]]
    return allow_default, exceptions


def _line(key: tuple[str, int | None, int | None], access: int) -> str:
    kind, major, minor = key
    acc = "".join(ch for ch, bit in (("r", 2), ("w", 4), ("m", 1)) if access & bit)
    return f"{kind} {_num(major)}:{_num(minor)} {acc}"


def v1_update_writes(old: tuple[DeviceRule, ...], new: tuple[DeviceRule, ...]) -> list[tuple[str, str]]:
    """The writes that take a cgroup from ``old``'s rules to ``new``'s
    without a moment of denying what both allow: exceptions are added and
    trimmed in place when both lists have the same default; only a change of
    default resets the cgroup (through ``v1_writes(new)``)."""
    old_state = v1_state(v1_writes(old))
    new_state = v1_state(v1_writes(new))
    if old_state[0] != new_state[0]:
        return v1_writes(new)
    allow_default = new_state[0]
    add_file, trim_file = ("devices.deny", "devices.allow") if allow_default else ("devices.allow", "devices.deny")
    old_ex = {e[:3]: e[3] for e in old_state[1]}
    new_ex = {e[:3]: e[3] for e in new_state[1]}
    writes = []
    for key, acc in new_ex.items():
        if acc & ~old_ex.get(key, 0):
            writes.append((add_file, _line(key, acc & ~old_ex.get(key, 0))))
    for key, acc in old_ex.items():
        if acc & ~new_ex.get(key, 0):
            writes.append((trim_file, _line(key, acc & ~new_ex.get(key, 0))))
    got = v1_state(v1_writes(old) + writes)
    if got[0] != new_state[0] or sorted(got[1], key=repr) != sorted(new_state[1], key=repr):
        return v1_writes(new)  # pragma: no cover - the model says this cannot happen
    return writes


def v1_allows(state: tuple[bool, list[Exc]], kind: str, major: int, minor: int, access: int) -> bool:
    """The kernel's check (devcgroup_check_permission) against a v1 state."""
    allow_default, exceptions = state
    hits = [e for e in exceptions if e[0] == kind and e[1] in (None, major) and e[2] in (None, minor)]
    if allow_default:
        return not any(e[3] & access for e in hits)
    return any(access & ~e[3] == 0 for e in hits)


def rules_allow(rules: tuple[DeviceRule, ...], kind: str, major: int, minor: int, access: int) -> bool:
    """OCI's meaning: the last rule that matches decides (an allow rule
    matches when it has every access asked for, a deny rule when it has any);
    no rule matching allows."""
    for r in reversed(rules):
        if r.type not in ("a", kind) or r.major not in (None, major) or r.minor not in (None, minor):
            continue
        mask = _mask(r.access)
        if r.allow and access & ~mask == 0:
            return True
        if not r.allow and access & mask:
            return False
    return True


def _differs(rules: tuple[DeviceRule, ...], majors: list[int], minors: list[int]) -> bool:
    state = v1_state(v1_writes(rules))
    for kind in ("c", "b"):
        for major in majors:
            for minor in minors:
                for access in range(1, 8):
                    if v1_allows(state, kind, major, minor, access) != rules_allow(rules, kind, major, minor, access):
                        return True
    return False


@functools.lru_cache(maxsize=64)
def _v1_problem(rules: tuple[DeviceRule, ...]) -> int | None:
    """The index of the rule from which v1's files would mean something else
    than the rules (checked on every class of device the rules tell apart),
    or None."""
    majors = sorted({r.major for r in rules if r.major is not None})
    minors = sorted({r.minor for r in rules if r.minor is not None})
    majors.append((max(majors) + 1) if majors else 0)
    minors.append((max(minors) + 1) if minors else 0)
    if not _differs(rules, majors, minors):
        return None
    return next(n for n in range(1, len(rules) + 1) if _differs(rules[:n], majors, minors)) - 1


def check_v1_expressible(rules: tuple[DeviceRule, ...]) -> None:
    """CgroupError, naming the rule, if cgroup v1's devices files cannot say what the rules say."""
    i = _v1_problem(rules)
    if i is not None:
        r = rules[i]
        what = f"{'allow' if r.allow else 'deny'} {r.type} {_num(r.major)}:{_num(r.minor)} {r.access}"
        raise CgroupError(
            f"device rule {i} ({what}) narrows an earlier, wider rule, which cgroup v1's devices files "
            f"cannot express: list the devices to allow one by one instead"
        )


# ---- v2: the eBPF program -------------------------------------------------------

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
# access_type = (access << 16) | type
_DEV_TYPE = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
_ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE

_LDXW = 0x61  # dst = *(u32 *)(src + off)
_AND32_K = 0x54
_RSH32_K = 0x74
_MOV32_K = 0xB4
_MOV32_X = 0xBC
_JNE_K = 0x56  # BPF_JMP32 | BPF_JNE | BPF_K: 32-bit compares, so majors >= 2**31 work
_JEQ_K = 0x16  # BPF_JMP32 | BPF_JEQ | BPF_K
_EXIT = 0x95

BPF_CGROUP_DEVICE = 6  # attach type
BPF_F_ALLOW_MULTI = 2


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> tuple[int, int, int, int, int]:
    return (code, dst, src, off, imm)


def _mask(access: str) -> int:
    m = 0
    for ch in access:
        m |= _ACCESS[ch]
    return m


def program(rules: tuple[DeviceRule, ...]) -> bytes:
    """Compile the rules to eBPF: registers r2 = type, r3 = access, r4 = major,
    r5 = minor; one block per rule, last rule first, the first block that
    matches returns its verdict; no match allows."""
    insns = [
        _insn(_LDXW, 2, 1, 0),
        _insn(_AND32_K, 2, imm=0xFFFF),
        _insn(_LDXW, 3, 1, 0),
        _insn(_RSH32_K, 3, imm=16),
        _insn(_LDXW, 4, 1, 4),
        _insn(_LDXW, 5, 1, 8),
    ]
    for r in reversed(rules):
        block: list[tuple[int, int, int, int, int]] = []
        skips: list[int] = []  # indexes of jumps to the end of this block
        if r.type != "a":
            skips.append(len(block))
            block.append(_insn(_JNE_K, 2, imm=_DEV_TYPE[r.type]))
        acc = _mask(r.access)
        if acc != 7:
            block.append(_insn(_MOV32_X, 1, 3))
            if r.allow:  # allowed when every access asked for is in the rule
                block.append(_insn(_AND32_K, 1, imm=~acc & 7))
                skips.append(len(block))
                block.append(_insn(_JNE_K, 1, imm=0))
            else:  # denied when any access asked for is in the rule
                block.append(_insn(_AND32_K, 1, imm=acc))
                skips.append(len(block))
                block.append(_insn(_JEQ_K, 1, imm=0))
        if r.major is not None:
            skips.append(len(block))
            block.append(_insn(_JNE_K, 4, imm=r.major))
        if r.minor is not None:
            skips.append(len(block))
            block.append(_insn(_JNE_K, 5, imm=r.minor))
        block.append(_insn(_MOV32_K, 0, imm=1 if r.allow else 0))
        block.append(_insn(_EXIT))
        for i in skips:
            code, dst, src, _, imm = block[i]
            block[i] = (code, dst, src, len(block) - 1 - i, imm)
        insns += block
        if not skips:
            break  # this rule matches every device: nothing before it can matter
    else:
        insns += [_insn(_MOV32_K, 0, imm=1), _insn(_EXIT)]
    return b"".join(struct.pack("<BBhi", c, (s << 4) | d, o, _s32(i)) for c, d, s, o, i in insns)


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


# Loaded programs by rule list: loading (the verifier) costs ~0.4 ms, and one
# program can be attached to any number of cgroups.
_programs: dict[tuple[DeviceRule, ...], int] = {}
_programs_lock = threading.Lock()


def _program_fd(rules: tuple[DeviceRule, ...]) -> int:
    """The loaded program for the rules (call with _programs_lock held: the
    fd may be evicted and closed by the next caller)."""
    from .._shim import ffi, lib

    fd = _programs.get(rules)
    if fd is not None:
        return fd
    code = program(rules)
    log = ffi.new("char[]", 4096)
    fd = lib.pc_bpf_load_device_prog(code, len(code) // 8, log, 4096)
    if fd < 0:
        detail = ffi.string(log).decode(errors="replace").strip()
        raise CgroupError(f"loading the device program: {os.strerror(-fd)}" + (f": {detail}" if detail else ""))
    if len(_programs) >= 16:
        os.close(_programs.pop(next(iter(_programs))))
    _programs[rules] = fd
    return fd


def attach(cgroup_dir: str, rules: tuple[DeviceRule, ...], fresh: bool = False) -> None:
    """Attach the rules' program to the cgroup.  Unless the cgroup is
    ``fresh`` (just made, nothing attached), the program(s) attached before
    are detached after the new one is in: no moment is unguarded."""
    from .._shim import ffi, lib

    try:
        cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"cannot open cgroup {cgroup_dir}: {os.strerror(e.errno or 0)}") from None
    try:
        old: list[int] = []
        if not fresh:
            ids = ffi.new("uint32_t[64]")
            count = ffi.new("uint32_t *", 64)
            if lib.pc_bpf_query(cg, BPF_CGROUP_DEVICE, ids, count) == 0:
                old = list(ids[0 : count[0]])
        with _programs_lock:
            prog = _program_fd(tuple(rules))
            r = lib.pc_bpf_attach(cg, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        if r < 0:
            raise CgroupError(f"attaching the device program to {cgroup_dir}: {os.strerror(-r)}")
        for pid in old:
            fd = lib.pc_bpf_prog_get_fd_by_id(pid)
            if fd >= 0:
                lib.pc_bpf_detach(cg, fd, BPF_CGROUP_DEVICE)
                os.close(fd)
    finally:
        os.close(cg)
