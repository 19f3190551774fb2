"""Images: unpacking against umoci, and preparing a cached 50-layer rootfs.

* unpack: a ~100 MB image of 5 gzip layers (files of mixed sizes, text-like
  content), unpacked from scratch N times: ``ImageStore.unpack`` (every
  layer removed between runs; the blobs are already in the store, as they
  are in umoci's layout) against ``umoci unpack`` of the same OCI layout
  (into a fresh bundle each run).
* pull: the same image from a local registry (Debian's docker-registry on
  127.0.0.1, filesystem storage on /dev/shm) into an empty store, against
  ``skopeo copy docker://... oci:DIR`` into an empty directory.  Target: at
  least as fast as skopeo.
* prepare: a cached image of 50 layers made ready for a container: resolve
  the reference, find the unpacked layers, their short links and the
  overlay options, then mount the overlay (in a private mount namespace)
  and unmount it.  Target: under 1 ms.

Usage (as root): python3 benchmarks/images.py [-n 5] [--prepare-n 300]
Everything lives in a temporary directory on /dev/shm, removed at the end;
the run has a private mount namespace with fresh tmpfs over /var/lib and /run.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from imagetools import E, make_layout, start_registry  # noqa: E402

from pycontainer.images import ImageStore  # noqa: E402

WORDS = [w.encode() for w in "the quick brown fox jumps over a lazy dog while layers stack up in order".split()]


def text(rng: random.Random, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += rng.choice(WORDS) + (b"\n" if rng.random() < 0.1 else b" ")
    return bytes(out[:size])


def big_layers(total_mb: int = 100, layers: int = 5) -> list[list[E]]:
    rng = random.Random(42)
    per_layer = total_mb * (1 << 20) // layers
    out = []
    for n in range(layers):
        entries = [E(f"l{n}", "dir", mode=0o755)]
        size = 0
        i = 0
        while size < per_layer:
            s = rng.choice([200, 2_000, 20_000, 200_000, 2_000_000])
            d = f"l{n}/d{i % 50}"
            if i < 50:
                entries.append(E(d, "dir", mode=0o755))
            entries.append(E(f"{d}/f{i}", data=text(rng, s)))
            size += s
            i += 1
        out.append(entries)
    return out


_libc = ctypes.CDLL(None, use_errno=True)


def _check(r: int, what: str) -> None:
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def bench_unpack(tmp: str, n: int) -> dict[str, list[float]]:
    lay = os.path.join(tmp, "lay")
    print("building a ~100 MB, 5-layer gzip image ...", file=sys.stderr)
    make_layout(lay, big_layers(), ref="bench", compression="gzip")
    store = ImageStore(os.path.join(tmp, "data"))
    store.import_oci_layout(lay, ref="localhost/bench:1")
    times: dict[str, list[float]] = {"pycontainer unpack": [], "umoci unpack": []}
    for i in range(n):
        for name in sorted(os.listdir(store.layers_dir)):
            shutil.rmtree(os.path.join(store.layers_dir, name))
        t = time.perf_counter()
        store.unpack("localhost/bench:1")
        times["pycontainer unpack"].append(time.perf_counter() - t)
        bundle = os.path.join(tmp, f"bundle{i}")
        t = time.perf_counter()
        subprocess.run(["umoci", "unpack", "--image", f"{lay}:bench", bundle], check=True, capture_output=True)
        times["umoci unpack"].append(time.perf_counter() - t)
        shutil.rmtree(bundle)
    return times


def bench_pull(tmp: str, n: int) -> dict[str, list[float]]:
    proc, host = start_registry(tmp)
    times: dict[str, list[float]] = {"pycontainer pull": [], "skopeo copy": []}
    try:
        ref = f"{host}/bench/big:1"
        store = ImageStore(os.path.join(tmp, "data"))
        store.tag("localhost/bench:1", ref)
        store.push(ref, progress=False)
        for i in range(n):
            t = time.perf_counter()
            ImageStore(os.path.join(tmp, f"pull{i}")).pull(ref, progress=False)
            times["pycontainer pull"].append(time.perf_counter() - t)
            shutil.rmtree(os.path.join(tmp, f"pull{i}"))
            t = time.perf_counter()
            subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp}/sk{i}:x"],
                           check=True, capture_output=True)  # fmt: skip
            times["skopeo copy"].append(time.perf_counter() - t)
            shutil.rmtree(os.path.join(tmp, f"sk{i}"))
    finally:
        proc.terminate()
        proc.wait(10)
    return times


def bench_prepare(tmp: str, n: int) -> dict[str, list[float]]:
    lay = os.path.join(tmp, "many")
    make_layout(lay, [[E(f"f{i}", data=str(i).encode())] for i in range(50)], ref="many")
    store = ImageStore(os.path.join(tmp, "data"))
    store.import_oci_layout(lay, ref="localhost/many:1")
    store.unpack("localhost/many:1")  # cached from here on
    target = os.path.join(tmp, "rootfs")
    upper, work = os.path.join(tmp, "upper"), os.path.join(tmp, "work")
    for d in (target, upper, work):
        os.mkdir(d)
    times: dict[str, list[float]] = {"prepare 50 layers (resolve)": [], "prepare 50 layers (+mount, umount)": []}
    here = os.getcwd()
    for _ in range(n):
        t0 = time.perf_counter()
        image = ImageStore(store.root).get("localhost/many:1")
        layers = list(reversed(store.unpack(image)))
        lower = ":".join(store.short_link(d) for d in layers)
        data = f"lowerdir={lower},upperdir={upper},workdir={work}".encode()
        t1 = time.perf_counter()
        os.chdir(store.root)
        _check(_libc.mount(b"overlay", target.encode(), b"overlay", 0, data), "mount overlay")
        os.chdir(here)
        _check(_libc.umount2(target.encode(), 0), "umount")
        t2 = time.perf_counter()
        times["prepare 50 layers (resolve)"].append(t1 - t0)
        times["prepare 50 layers (+mount, umount)"].append(t2 - t0)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=5, help="unpack runs per row (default 5)")
    ap.add_argument("--prepare-n", type=int, default=300, help="prepare runs (default 300)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("images.py needs root", file=sys.stderr)
        return 2
    # A private mount namespace for the whole run: the prepare row mounts
    # overlays, and skopeo keeps a cache under /var/lib/containers and locks
    # under /run, which get fresh tmpfs here and vanish with us.
    _check(_libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(b"none", b"/", None, 0x40000 | 0x4000, None), "mount --make-rprivate /")
    for where in (b"/var/lib", b"/run"):  # (not /dev/shm: the run's own files are there)
        _check(_libc.mount(b"tmpfs", where, b"tmpfs", 0, None), f"mount tmpfs on {where.decode()}")
    tmp = tempfile.mkdtemp(prefix="pyc-bench-img-", dir="/dev/shm")
    try:
        unpack = bench_unpack(tmp, args.n)
        pull = bench_pull(tmp, args.n)
        prepare = bench_prepare(tmp, args.prepare_n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'what':36} {'median ms':>10} {'min ms':>8} {'x base':>8}")
    base = statistics.median(unpack["umoci unpack"])
    for name, ts in unpack.items():
        print(
            f"{name:36} {statistics.median(ts) * 1000:10.1f} {min(ts) * 1000:8.1f} {statistics.median(ts) / base:8.2f}"
        )
    base = statistics.median(pull["skopeo copy"])
    for name, ts in pull.items():
        print(
            f"{name:36} {statistics.median(ts) * 1000:10.1f} {min(ts) * 1000:8.1f} {statistics.median(ts) / base:8.2f}"
        )
    for name, ts in prepare.items():
        print(f"{name:36} {statistics.median(ts) * 1000:10.3f} {min(ts) * 1000:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
