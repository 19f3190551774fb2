"""The seccomp program re-encoded by ranges (pycontainer/security/_bpf.py)
must return what libseccomp's returns for every input.

The programs are compared by running both in a plain classic-BPF machine
(``_bpf.run``) on every interval edge either program has (the analysis is
checked by values, not by itself), on random numbers, and, where a program
reads the arguments, on argument values around every constant it compares
with.  The kernel runs the new programs in tests/test_security.py (random
profiles, the escape suite)."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pycontainer.config import DEFAULT_CAPABILITIES, SeccompProfile
from pycontainer.errors import ConfigError
from pycontainer.security import (
    _bpf,
    compile_seccomp,
    default_seccomp_profile,
    libseccomp_program,
    seccomp_profile_from_json,
)

X86_64, I386 = 0xC000003E, 0x40000003
X32_BIT = 0x40000000
BOUNDING = frozenset(DEFAULT_CAPABILITIES)


def _arg_values(insns: list[_bpf.Insn]) -> list[int]:
    vals: set[int] = {0, 1, _bpf.MAX}
    for code, _, _, k in insns:
        if code in (_bpf.JEQ, _bpf.JGT, _bpf.JGE, _bpf.JSET):
            vals |= {k, (k - 1) & _bpf.MAX, (k + 1) & _bpf.MAX}
    return sorted(vals)


def assert_same(old: bytes, new: bytes, seed: int = 0, arg_tries: int = 60) -> None:
    p, f = _bpf.decode(old), _bpf.decode(new)
    rng = random.Random(seed)
    tp, tf = _bpf.table(_bpf.analyse(p)), _bpf.table(_bpf.analyse(f))
    arches = {X86_64, I386, 0, _bpf.MAX} | {e for lo, hi in [*tp, *tf] for e in (lo, hi)}
    values = _arg_values(p)
    for arch in sorted(arches):
        rows = [row for t in (tp, tf) for (lo, hi), row in t.items() if lo <= arch <= hi]
        nrs = {e for row in rows for lo, hi, _ in row for e in (lo, hi)}
        nrs |= {rng.getrandbits(9) for _ in range(50)} | {X32_BIT | rng.getrandbits(9) for _ in range(20)}
        data_nrs = {lo for row in rows for lo, hi, leaf in row if leaf.ret is None}
        for nr in sorted(nrs):
            d = _bpf.seccomp_data(nr, arch)
            assert _bpf.run(p, d) == _bpf.run(f, d), f"arch {arch:#x} nr {nr:#x}"
        for nr in sorted(data_nrs):
            for _ in range(arg_tries):
                args = [rng.choice(values) | rng.choice((0, 0, 1, _bpf.MAX)) << 32 for _ in range(6)]
                d = _bpf.seccomp_data(nr, arch, args)
                assert _bpf.run(p, d) == _bpf.run(f, d), f"arch {arch:#x} nr {nr:#x} args {args}"


def test_dockers_profile_is_a_third_as_long_and_the_same_function():
    profile = default_seccomp_profile()
    old = libseccomp_program(profile, BOUNDING)
    new, _ = compile_seccomp(profile, BOUNDING)
    assert len(new) * 2 < len(old), (len(old) // 8, len(new) // 8)
    assert new == _bpf.ranged(old)
    assert_same(old, new, arg_tries=400)


def test_every_number_of_both_architectures_returns_the_same():
    """Exhaustively over the numbers a kernel can have, for Docker's profile."""
    old = libseccomp_program(default_seccomp_profile(), BOUNDING)
    p, f = _bpf.decode(old), _bpf.decode(_bpf.ranged(old))
    for arch in (X86_64, I386, X86_64 + 1, 0):
        for nr in [*range(0, 1100), *range(X32_BIT, X32_BIT + 600), 0x7FFFFFFF, 0x80000000, _bpf.MAX]:
            d = _bpf.seccomp_data(nr, arch)
            assert _bpf.run(p, d) == _bpf.run(f, d), (hex(arch), hex(nr))


def _names() -> list[str]:
    names: set[str] = set()
    for rule in default_seccomp_profile().syscalls:
        names.update(rule.names)
    return sorted(names)


ACTIONS = ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP",
           "SCMP_ACT_TRACE", "SCMP_ACT_LOG"]  # fmt: skip
OPS = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"]
VALUES = [0, 1, 2, 8, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, (1 << 63) + 5, (1 << 64) - 1]


@st.composite
def profiles(draw) -> SeccompProfile:
    names = _names()
    rules = []
    for _ in range(draw(st.integers(1, 8))):
        chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=120, unique=True))
        rule = {"names": chosen, "action": draw(st.sampled_from(ACTIONS))}
        if draw(st.booleans()):
            rule["errnoRet"] = draw(st.integers(1, 4000))
        if draw(st.integers(0, 3)) == 0:
            rule["args"] = [
                {"index": draw(st.integers(0, 5)), "op": draw(st.sampled_from(OPS)),
                 "value": draw(st.sampled_from(VALUES)), "valueTwo": draw(st.sampled_from(VALUES[:5]))}
                for _ in range(draw(st.integers(1, 3)))
            ]  # fmt: skip
        rules.append(rule)
    raw = {
        "defaultAction": draw(st.sampled_from(ACTIONS)),
        "architectures": draw(
            st.lists(st.sampled_from(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]), min_size=1, unique=True)
        ),
        "syscalls": rules,
    }
    return seccomp_profile_from_json(raw)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile=profiles(), seed=st.integers(0, 1000))
def test_random_profiles_re_encode_to_the_same_function(profile, seed):
    try:
        old = libseccomp_program(profile, BOUNDING)
    except ConfigError:
        assume(False)
    new = _bpf.ranged(old)  # (Unsupported would mean libseccomp wrote something this module does not read)
    assert_same(old, new, seed)  # (compile_seccomp keeps the shorter of the two; this one may be longer)


def test_far_jumps_get_trampolines():
    """Every other number allowed: a section of 600 intervals (longer than
    the 300 comparisons it replaces: compile_seccomp would keep those), whose
    jumps to its returns need a `ja` (cBPF's conditional jumps reach 255
    ahead)."""
    insns = [(_bpf.LD_ABS, 0, 0, 4), (_bpf.JEQ, 1, 0, X86_64), (_bpf.RET_K, 0, 0, 0), (_bpf.LD_ABS, 0, 0, 0)]
    for nr in range(0, 600, 2):
        insns += [(_bpf.JEQ, 0, 1, nr), (_bpf.RET_K, 0, 0, 0x7FFF0000)]
    insns.append((_bpf.RET_K, 0, 0, 0x50001))
    old = _bpf.encode(insns)
    new = _bpf.ranged(old)
    assert any(code == _bpf.JA for code, _, _, _ in _bpf.decode(new))
    assert_same(old, new)


def test_a_program_it_does_not_read_is_kept_as_libseccomp_wrote_it(monkeypatch):
    # scratch memory, the X register: not what libseccomp writes
    for insns in (
        [(0x20, 0, 0, 0), (0x02, 0, 0, 0), (0x06, 0, 0, _bpf.MAX)],  # st M[0]
        [(0x20, 0, 0, 0), (0x1D, 0, 1, 0), (0x06, 0, 0, 0), (0x06, 0, 0, _bpf.MAX)],  # jeq x
        [(0x20, 0, 0, 0), (0x15, 5, 0, 3), (0x06, 0, 0, 0)],  # a jump out of the program
        [(0x20, 0, 0, 1), (0x06, 0, 0, 0)],  # an unaligned load
    ):
        with pytest.raises(_bpf.Unsupported):
            _bpf.ranged(_bpf.encode(insns))

    def refuse(program: bytes) -> bytes:
        raise _bpf.Unsupported("test")

    monkeypatch.setattr(_bpf, "ranged", refuse)
    compile_seccomp.cache_clear()
    try:
        profile = default_seccomp_profile()
        assert compile_seccomp(profile, BOUNDING)[0] == libseccomp_program(profile, BOUNDING)
    finally:
        compile_seccomp.cache_clear()


def test_the_equivalence_check_refuses_any_change():
    """Every comparison constant of the new program moved by one, every
    return value with a bit flipped: `equivalent` tells each from the
    original (it is what guards the kernel against a bug in the re-encoding)."""
    old = _bpf.decode(libseccomp_program(default_seccomp_profile(), BOUNDING))
    new = _bpf.decode(_bpf.ranged(_bpf.encode(old)))
    assert _bpf.equivalent(old, new) and _bpf.equivalent(old, old)
    for i, (code, jt, jf, k) in enumerate(new):
        if code in (_bpf.JGE, _bpf.JEQ) and 0 < k < _bpf.MAX:
            changes = [(code, jt, jf, k + 1), (code, jt, jf, k - 1)]
        elif code == _bpf.RET_K:
            changes = [(code, jt, jf, k ^ 1)]
        else:
            continue
        for changed in changes:
            assert not _bpf.equivalent(old, [*new[:i], changed, *new[i + 1 :]]), (i, changed)


def test_a_continuation_copied_from_the_wrong_place_is_refused(monkeypatch):
    """(The review's case: a number sent to another argument check's code.)"""
    old = libseccomp_program(default_seccomp_profile(), BOUNDING)
    starts = [lf.pc for lf in _bpf.analyse(_bpf.decode(old)) if lf.ret is None]
    real = _bpf._copy

    def wrong(asm, insns, start, arch, nr):
        real(asm, insns, min(starts) if start != min(starts) else max(starts), arch, nr)

    monkeypatch.setattr(_bpf, "_copy", wrong)
    with pytest.raises(_bpf.Unsupported, match="differs"):
        _bpf.ranged(old)


def test_a_bug_in_the_re_encoding_falls_back_with_a_warning(monkeypatch):
    def broken(program: bytes) -> bytes:
        raise KeyError("L7")

    monkeypatch.setattr(_bpf, "ranged", broken)
    compile_seccomp.cache_clear()
    try:
        profile = default_seccomp_profile()
        with pytest.warns(UserWarning, match="libseccomp's program is used"):
            program, _ = compile_seccomp(profile, BOUNDING)
        assert program == libseccomp_program(profile, BOUNDING)
    finally:
        compile_seccomp.cache_clear()


def test_the_analysis_partitions_the_plane():
    old = libseccomp_program(default_seccomp_profile(), BOUNDING)
    leaves = _bpf.analyse(_bpf.decode(old))
    area = sum((lf.arch[1] - lf.arch[0] + 1) * (lf.nr[1] - lf.nr[0] + 1) for lf in leaves)
    assert area == (_bpf.MAX + 1) ** 2
    _bpf.table(leaves)  # (raises unless every architecture's numbers are covered once)
