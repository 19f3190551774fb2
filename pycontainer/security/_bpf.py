"""Shorter seccomp programs: libseccomp's filter, re-encoded by ranges.

libseccomp compares the system-call number with each call a profile names,
one instruction per call and architecture, even as a binary tree
(``SCMP_FLTATR_CTL_OPTIMIZE=2``): Docker's default profile for x86_64 and
i386 comes out at ~920 instructions.  The kernel's cost of installing a
filter grows with its length (checking it, converting it to eBPF,
JIT-compiling it in several passes): ~0.35 ms on this machine's VM, on the
critical path of every container start.  Yet most of the calls a profile
allows are neighbours: the 298 that x86_64 allows outright lie in 31 runs of
consecutive numbers.

This module compiles no rules: libseccomp does.  It reads libseccomp's
program and writes the same function shorter.

1. :func:`analyse` runs the program over *intervals* of (architecture,
   number) instead of values: each comparison with the number or the
   architecture splits the interval it tests.  A leaf is a return value, or
   the instruction where the program first reads an argument (or the
   instruction pointer).  The leaves cover every one of the 2^64 pairs
   exactly once, so they are the program's whole function of (arch, nr).
2. :func:`ranged` emits a binary search over the architectures' intervals,
   then over each one's intervals of numbers (``jge`` only), every leaf a
   shared return, or a copy of the libseccomp code from the argument read on
   (comparisons of the number or architecture that the leaf's interval
   already decides are left out of the copy).
3. :func:`equivalent` then runs the two programs together over intervals of
   (arch, nr), every step on the data (arguments, instruction pointer) the
   same instruction on both sides: they return the same for every input, or
   the new one is refused.  A program that uses what this module does not
   read (the X register, scratch memory), or any mismatch, raises
   :class:`Unsupported`, and the caller keeps libseccomp's program.

Only classic BPF as the kernel's seccomp accepts it is read and written
(``struct sock_filter``: u16 code, u8 jt, u8 jf, u32 k).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import NamedTuple

MAX = 0xFFFFFFFF
_INSN = struct.Struct("=HBBI")

# the opcodes read and written (linux/filter.h, linux/bpf_common.h)
LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
LD_IMM = 0x00  # BPF_LD | BPF_W | BPF_IMM
RET_K = 0x06
RET_A = 0x16
JA = 0x05
JEQ, JGT, JGE, JSET = 0x15, 0x25, 0x35, 0x45  # BPF_JMP | op | BPF_K
_ALU_K = {0x04, 0x14, 0x24, 0x34, 0x44, 0x54, 0x64, 0x74, 0x94, 0xA4}  # add sub mul div or and lsh rsh mod xor
ALU_NEG = 0x84
_COND = (JEQ, JGT, JGE, JSET)

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
_NR, _ARCH = 0, 4
_DATA_SIZE = 64

_STEPS = 200_000  # an analysis that needs more is given up (libseccomp's programs need ~2 per instruction)

Insn = tuple[int, int, int, int]
Interval = tuple[int, int]


class Unsupported(Exception):
    """The program does something this module does not re-encode; keep it as it is."""


def decode(program: bytes) -> list[Insn]:
    if len(program) % _INSN.size:
        raise Unsupported("not a whole number of instructions")
    return [_INSN.unpack_from(program, i) for i in range(0, len(program), _INSN.size)]


def encode(insns: Sequence[Insn]) -> bytes:
    return b"".join(_INSN.pack(*i) for i in insns)


# ---- analysis ------------------------------------------------------------------


def _split(code: int, k: int, iv: Interval) -> tuple[list[Interval], list[Interval]]:
    """The parts of ``iv`` for which the comparison is true, and false."""
    lo, hi = iv
    if code == JEQ:
        if not lo <= k <= hi:
            return [], [iv]
        return [(k, k)], [p for p in ((lo, k - 1), (k + 1, hi)) if p[0] <= p[1]]
    if code in (JGT, JGE):
        edge = k + 1 if code == JGT else k  # true from here on
        if edge <= lo:
            return [iv], []
        if edge > hi:
            return [], [iv]
        return [(edge, hi)], [(lo, edge - 1)]
    # JSET: decided only for a single value
    if lo == hi:
        return ([iv], []) if lo & k else ([], [iv])
    raise Unsupported("jset on the number or architecture")


def _forks(
    insns: Sequence[Insn], pc: int, a: str | None, arch: Interval, nr: Interval
) -> list[tuple[int, Interval, Interval]]:
    """Where a comparison of the number or the architecture at ``pc`` leads,
    as (target, arch, nr) for each part of the interval it tests; [] for any
    other instruction."""
    code, jt, jf, k = insns[pc]
    if code not in _COND or a not in ("nr", "arch"):
        return []
    true, false = _split(code, k, nr if a == "nr" else arch)
    return [
        (pc + 1 + off, *((arch, part) if a == "nr" else (part, nr)))
        for parts, off in ((true, jt), (false, jf))
        for part in parts
    ]


class Leaf(NamedTuple):
    """Where the program ends for (arch, nr) in the two intervals: ``ret`` is
    the value it returns, or None: at ``pc`` it reads the data (an argument
    or the instruction pointer), and what it returns depends on that."""

    arch: Interval
    nr: Interval
    ret: int | None
    pc: int


def analyse(insns: Sequence[Insn]) -> list[Leaf]:
    """The program's leaves; they partition the (arch, nr) plane."""
    leaves: list[Leaf] = []
    # (pc, what A holds: "nr", "arch" or None (nothing loaded yet), arch interval, nr interval)
    stack: list[tuple[int, str | None, Interval, Interval]] = [(0, None, (0, MAX), (0, MAX))]
    steps = 0
    while stack:
        pc, a, arch, nr = stack.pop()
        while True:
            steps += 1
            if steps > _STEPS:
                raise Unsupported("too many paths")
            if not 0 <= pc < len(insns):
                raise Unsupported("a jump out of the program")
            code, jt, jf, k = insns[pc]
            if code == LD_ABS:
                if k == _NR:
                    a = "nr"
                elif k == _ARCH:
                    a = "arch"
                elif k < _DATA_SIZE and not k % 4:
                    leaves.append(Leaf(arch, nr, None, pc))
                    break
                else:
                    raise Unsupported(f"load of offset {k}")
                pc += 1
            elif code == RET_K:
                leaves.append(Leaf(arch, nr, k, pc))
                break
            elif code == JA:
                pc += 1 + k
            elif code in _COND and a is not None:
                (pc, arch, nr), *rest = _forks(insns, pc, a, arch, nr)
                stack += [(t, a, na, nn) for t, na, nn in rest]
            else:
                raise Unsupported(f"instruction {code:#x} before any argument is read")
    return leaves


Table = dict[Interval, list[tuple[int, int, Leaf]]]


def table(leaves: Sequence[Leaf]) -> Table:
    """The leaves by elementary architecture interval: for each, the number
    intervals in order (lo, hi, leaf), covering 0..MAX exactly."""
    edges = sorted({lf.arch[0] for lf in leaves} | {lf.arch[1] + 1 for lf in leaves if lf.arch[1] < MAX})
    out: Table = {}
    for i, lo in enumerate(edges):
        hi = edges[i + 1] - 1 if i + 1 < len(edges) else MAX
        row = sorted((lf.nr[0], lf.nr[1], lf) for lf in leaves if lf.arch[0] <= lo and hi <= lf.arch[1])
        expect = 0
        for nlo, nhi, _ in row:
            if nlo != expect:
                raise Unsupported("the leaves do not partition the numbers")
            expect = nhi + 1
        if expect != MAX + 1:
            raise Unsupported("the leaves do not cover the numbers")
        out[(lo, hi)] = row
    if not out or min(out)[0] != 0:
        raise Unsupported("the leaves do not cover the architectures")
    return out


def equivalent(p: Sequence[Insn], q: Sequence[Insn]) -> bool:
    """Do ``p`` and ``q`` return the same for every input?  Both run
    together over intervals of (arch, nr): a comparison of the number or the
    architecture on either side splits the interval (or is decided by it);
    loads of them and ``ja`` are each side's own; every other step (a load
    of an argument or the instruction pointer, ALU, a comparison of what was
    loaded, a return) must be the same instruction with the same constant on
    both sides, the two taking the same branch."""
    seen: set[tuple[int, str | None, int, str | None, Interval, Interval]] = set()
    todo: list[tuple[int, str | None, int, str | None, Interval, Interval]] = [(0, None, 0, None, (0, MAX), (0, MAX))]
    steps = 0
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        steps += 1
        if steps > _STEPS:
            raise Unsupported("too many paths")
        pp, pa, qp, qa, arch, nr = state
        pp, pa = _settle(p, pp, pa, arch, nr, loads=True)
        qp, qa = _settle(q, qp, qa, arch, nr, loads=True)
        # a comparison of the number or architecture, on either side: split
        forks = _forks(p, pp, pa, arch, nr)
        if forks:
            todo += [(t, pa, qp, qa, na, nn) for t, na, nn in forks]
            continue
        forks = _forks(q, qp, qa, arch, nr)
        if forks:
            todo += [(pp, pa, t, qa, na, nn) for t, na, nn in forks]
            continue
        pi, qi = p[pp], q[qp]
        if pi[0] != qi[0] or pi[3] != qi[3]:
            return False  # (a different step on the data, or a different return)
        code, k = pi[0], pi[3]
        if code in (RET_A, ALU_NEG) or code in _ALU_K or code in _COND:
            if pa != qa:
                return False  # (A holds what each loaded: equal only if both loaded it in step)
        if code in (RET_K, RET_A):
            continue
        if code == LD_ABS:
            if k >= _DATA_SIZE or k % 4:
                raise Unsupported(f"load of offset {k}")
            a = "nr" if k == _NR else "arch" if k == _ARCH else "data"
            todo.append((pp + 1, a, qp + 1, a, arch, nr))
        elif code == LD_IMM or code in _ALU_K or code == ALU_NEG:
            todo.append((pp + 1, "data", qp + 1, "data", arch, nr))
        elif code in _COND:  # (on the data: the same outcome on both sides)
            todo.append((pp + 1 + pi[1], pa, qp + 1 + qi[1], qa, arch, nr))
            todo.append((pp + 1 + pi[2], pa, qp + 1 + qi[2], qa, arch, nr))
        else:
            raise Unsupported(f"instruction {code:#x}")
    return True


# ---- emission ------------------------------------------------------------------


class _Item:
    """A label, an instruction (``jt``/``jf``: labels, for a conditional
    jump), or a ``ja`` to the label ``target``."""

    __slots__ = ("kind", "name", "code", "k", "jt", "jf")

    def __init__(self, kind: str, name: str = "", code: int = 0, k: int = 0, jt: str = "", jf: str = "") -> None:
        self.kind, self.name, self.code, self.k, self.jt, self.jf = kind, name, code, k, jt, jf


class _Asm:
    """Instructions with symbolic jump targets; a conditional jump further
    than 255 ahead goes through a ``ja`` placed right after it."""

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self._n = 0

    def label(self) -> str:
        self._n += 1
        return f"L{self._n}"

    def place(self, name: str) -> None:
        self.items.append(_Item("label", name))

    def insn(self, code: int, k: int = 0) -> None:
        self.items.append(_Item("insn", code=code, k=k))

    def cond(self, code: int, k: int, jt: str, jf: str) -> None:
        self.items.append(_Item("insn", code=code, k=k, jt=jt, jf=jf))

    def ja(self, target: str) -> None:
        self.items.append(_Item("ja", target))

    def _positions(self) -> dict[str, int]:
        pos: dict[str, int] = {}
        n = 0
        for it in self.items:
            if it.kind == "label":
                pos[it.name] = n
            else:
                n += 1
        return pos

    def _offset(self, pos: dict[str, int], target: str, n: int) -> int:
        off = pos[target] - n - 1
        if off < 0:
            raise Unsupported("a backward jump")
        return off

    def assemble(self) -> list[Insn]:
        while True:
            pos = self._positions()
            out: list[_Item] = []
            n = 0
            far = False
            for it in self.items:
                out.append(it)
                if it.kind == "label":
                    continue
                if it.kind == "insn" and it.jt:
                    tramps = []
                    for side in ("jt", "jf"):
                        target = getattr(it, side)
                        if self._offset(pos, target, n) > 255:
                            far = True
                            tramp = self.label()
                            setattr(it, side, tramp)
                            tramps += [_Item("label", tramp), _Item("ja", target)]
                    out += tramps
                n += 1
            self.items = out
            if not far:
                break
        insns: list[Insn] = []
        for it in self.items:
            n = len(insns)
            if it.kind == "ja":
                insns.append((JA, 0, 0, self._offset(pos, it.name, n)))
            elif it.kind == "insn":
                jt = self._offset(pos, it.jt, n) if it.jt else 0
                jf = self._offset(pos, it.jf, n) if it.jf else 0
                insns.append((it.code, jt, jf, it.k))
        return insns


def _tree(asm: _Asm, items: Sequence[tuple[int, str]]) -> None:
    """A binary search (``jge``) among ``items``: (first value, label), in
    order, the first starting at 0.  A is loaded."""
    if len(items) == 1:
        asm.ja(items[0][1])
        return

    def node(part: Sequence[tuple[int, str]], here: str | None) -> None:
        if here is not None:
            asm.place(here)
        mid = len(part) // 2
        left, right = part[:mid], part[mid:]
        ll = left[0][1] if len(left) == 1 else asm.label()
        rl = right[0][1] if len(right) == 1 else asm.label()
        asm.cond(JGE, right[0][0], jt=rl, jf=ll)
        if len(left) > 1:
            node(left, ll)
        if len(right) > 1:
            node(right, rl)

    node(items, None)


def _continuation(insns: Sequence[Insn], start: int, arch: Interval, nr: Interval) -> Iterator[tuple[int, str | None]]:
    """The states (pc, what A holds) the program can reach from ``start`` for
    (arch, nr) in the intervals, in program order, with the comparisons that
    the intervals decide (and plain ``ja``) followed through."""
    seen: set[tuple[int, str | None]] = set()
    todo: list[tuple[int, str | None]] = [(start, None)]
    while todo:
        state = _settle(insns, *todo.pop(), arch, nr)
        if state in seen:
            continue
        seen.add(state)
        for nxt in _successors(insns, state):
            todo.append(nxt)
    yield from sorted(seen, key=lambda s: (s[0], s[1] or ""))


def _settle(
    insns: Sequence[Insn], pc: int, a: str | None, arch: Interval, nr: Interval, loads: bool = False
) -> tuple[int, str | None]:
    """Follow ``ja`` and the comparisons the intervals decide from ``pc``;
    with ``loads``, loads of the number or the architecture too (they do not
    depend on the data)."""
    while True:
        if not 0 <= pc < len(insns):
            raise Unsupported("a jump out of the program")
        code, jt, jf, k = insns[pc]
        if code == JA:
            pc += 1 + k
        elif loads and code == LD_ABS and k in (_NR, _ARCH):
            pc, a = pc + 1, "nr" if k == _NR else "arch"
        elif code in _COND and a in ("nr", "arch"):
            true, false = _split(code, k, nr if a == "nr" else arch)
            if true and false:
                return pc, a
            pc += 1 + (jt if true else jf)
        else:
            return pc, a


def _successors(insns: Sequence[Insn], state: tuple[int, str | None]) -> list[tuple[int, str | None]]:
    pc, a = state
    code, jt, jf, k = insns[pc]
    if code in (RET_K, RET_A):
        return []
    if code == LD_ABS:
        if k >= _DATA_SIZE or k % 4:
            raise Unsupported(f"load of offset {k}")
        return [(pc + 1, "nr" if k == _NR else "arch" if k == _ARCH else "data")]
    if code == LD_IMM or code in _ALU_K or code == ALU_NEG:
        return [(pc + 1, "data")]
    if code in _COND:
        return [(pc + 1 + jt, a), (pc + 1 + jf, a)]
    raise Unsupported(f"instruction {code:#x}")


def ranged(program: bytes) -> bytes:
    """``program`` (libseccomp's) re-encoded by ranges of numbers, or
    :class:`Unsupported`.  The result has the same function of (arch, nr),
    and the same code from where it reads an argument on."""
    insns = decode(program)
    want = table(analyse(insns))
    asm = _Asm()
    # Each tree returns through rets of its own, placed right after it:
    # short jumps (one shared set at the end would need a `ja` for most).
    rets: dict[str, dict[int, str]] = {}

    def ret(scope: str, k: int) -> str:
        return rets.setdefault(scope, {}).setdefault(k, asm.label())

    conts: dict[tuple[int, Interval, Interval], str] = {}
    sections: list[tuple[str, list[tuple[int, str]]]] = []
    arch_items: list[tuple[int, str]] = []
    for (alo, ahi), row in sorted(want.items()):
        # adjacent intervals with one outcome become one
        merged: list[tuple[int, int, Leaf]] = []
        for nlo, nhi, leaf in row:
            if merged and _key(merged[-1][2]) == _key(leaf):
                merged[-1] = (merged[-1][0], nhi, merged[-1][2])
            else:
                merged.append((nlo, nhi, leaf))
        if len(merged) == 1 and merged[0][2].ret is not None:
            target = ret("", merged[0][2].ret)
        else:
            # one continuation per data read, for every number that reaches it
            hull: dict[int, Interval] = {}
            for nlo, nhi, leaf in merged:
                if leaf.ret is None:
                    h = hull.get(leaf.pc)
                    hull[leaf.pc] = (nlo, nhi) if h is None else (min(h[0], nlo), max(h[1], nhi))
            target = asm.label()
            items: list[tuple[int, str]] = []
            for nlo, _, leaf in merged:
                if leaf.ret is not None:
                    items.append((nlo, ret(target, leaf.ret)))
                else:
                    key = (leaf.pc, (alo, ahi), hull[leaf.pc])
                    if key not in conts:
                        conts[key] = asm.label()
                    items.append((nlo, conts[key]))
            sections.append((target, items))
        if arch_items and arch_items[-1][1] == target:
            continue  # (the same as the interval before)
        arch_items.append((alo, target))
    asm.insn(LD_ABS, _ARCH)
    _tree(asm, arch_items)
    _place_rets(asm, rets.get("", {}))
    for label, items in sections:
        asm.place(label)
        asm.insn(LD_ABS, _NR)
        _tree(asm, items)
        _place_rets(asm, rets.get(label, {}))
    for (start, arch, nr), label in conts.items():
        asm.place(label)
        _copy(asm, insns, start, arch, nr)
    out = asm.assemble()
    if not equivalent(insns, out):
        raise Unsupported("the re-encoded program differs")  # (a bug here: keep libseccomp's)
    return encode(out)


def _place_rets(asm: _Asm, rets: dict[int, str]) -> None:
    for k, label in rets.items():
        asm.place(label)
        asm.insn(RET_K, k)


def _key(leaf: Leaf) -> tuple[int | None, int]:
    return (leaf.ret, -1) if leaf.ret is not None else (None, leaf.pc)


def _copy(asm: _Asm, insns: Sequence[Insn], start: int, arch: Interval, nr: Interval) -> None:
    """The code from ``start`` on, for (arch, nr) in the intervals."""
    states = list(_continuation(insns, start, arch, nr))
    labels = {s: asm.label() for s in states}

    def goto(pc: int, a: str | None) -> str:
        return labels[_settle(insns, pc, a, arch, nr)]

    for i, (pc, a) in enumerate(states):
        asm.place(labels[(pc, a)])
        code, jt, jf, k = insns[pc]
        if code in _COND:
            asm.cond(code, k, jt=goto(pc + 1 + jt, a), jf=goto(pc + 1 + jf, a))
            continue
        asm.insn(code, k)
        if code in (RET_K, RET_A):
            continue
        (nxt,) = _successors(insns, (pc, a))
        target = _settle(insns, *nxt, arch, nr)
        if i + 1 >= len(states) or states[i + 1] != target:
            asm.ja(labels[target])


# ---- a classic BPF machine, for checks ----------------------------------------


def run(insns: Sequence[Insn], data: bytes) -> int:
    """What the program returns for ``data`` (a struct seccomp_data)."""
    a = 0
    pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == LD_ABS:
            a = struct.unpack_from("=I", data, k)[0]
        elif code == LD_IMM:
            a = k
        elif code in (RET_K, RET_A):
            return k if code == RET_K else a
        elif code == JA:
            pc += k
        elif code in _COND:
            hit = {JEQ: a == k, JGT: a > k, JGE: a >= k, JSET: bool(a & k)}[code]
            pc += jt if hit else jf
        elif code in _ALU_K or code == ALU_NEG:
            a = _alu(code, a, k)
        else:
            raise Unsupported(f"instruction {code:#x}")
        pc += 1


def _alu(code: int, a: int, k: int) -> int:
    op = code & 0xF0
    if op == 0x80:
        return -a & MAX
    if op in (0x30, 0x90) and k == 0:
        raise Unsupported("division by zero")
    fns = {
        0x00: lambda: a + k,
        0x10: lambda: a - k,
        0x20: lambda: a * k,
        0x30: lambda: a // k,
        0x40: lambda: a | k,
        0x50: lambda: a & k,
        0x60: lambda: a << k if k < 32 else 0,
        0x70: lambda: a >> k if k < 32 else 0,
        0x90: lambda: a % k,
        0xA0: lambda: a ^ k,
    }
    return fns[op]() & MAX


def seccomp_data(nr: int, arch: int, args: Sequence[int] = (), ip: int = 0) -> bytes:
    full = [*args, *([0] * (6 - len(args)))]
    return struct.pack("=iIQ6Q", nr if nr < 0x80000000 else nr - 0x100000000, arch, ip, *full)
