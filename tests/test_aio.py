"""The asyncio API (pycontainer.aio, issue 9) on the real kernel.

Each test is one ``asyncio.run``; every container is deleted in a
``finally`` (or by ``async with``) whatever the outcome."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import signal
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from pycontainer import (
    PIPE,
    Container,
    ContainerExists,
    ContainerNotFound,
    ExitStatus,
    InitError,
    InvalidStateTransition,
    LogConfig,
    PyContainerError,
    Status,
)
from pycontainer.aio import AsyncContainer, AsyncExecProcess, LogStream

from .conftest import needs_root

pytestmark = needs_root

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def open_fds() -> dict[int, str]:
    """Our open fds and what they are (but the one listdir used)."""
    out = {}
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
    return out


@pytest.fixture
def quiet_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library makes network namespaces ahead of use in a thread of its
    own, whenever it likes (an fd for each, and a socket for a moment to
    bring its lo up): off for the tests that count fds, once its thread is idle."""
    from pycontainer import _netpool

    monkeypatch.setattr(_netpool.POOL, "size", 0)
    deadline = time.monotonic() + 5
    while _netpool.POOL._wanted.is_set() and _netpool.POOL._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)  # (it clears the flag once it sees it has enough)


async def cleanup(*containers: AsyncContainer | None) -> None:
    for c in containers:
        if c is not None and os.path.exists(os.path.join(c.container.dir, "state.json")):
            await c.delete(force=True)


def no_reader(fd: int) -> bool:
    """True when the running loop has no reader on ``fd`` (remove_reader says
    whether it removed one)."""
    return not asyncio.get_running_loop().remove_reader(fd)


# ---- wait ---------------------------------------------------------------------------


def test_wait_gives_the_same_status_as_the_blocking_api(root, config):
    # (command, start it?, signal to send, the status)
    cases: list[tuple[list[str], bool, int | None, ExitStatus]] = [
        (["sh", "-c", "exit 7"], True, None, ExitStatus(code=7)),
        (["sleep", "60"], True, signal.SIGKILL, ExitStatus(signal=signal.SIGKILL)),
        # a created init ends with 128 + the signal it caught
        (["true"], False, signal.SIGTERM, ExitStatus(code=128 + signal.SIGTERM)),
    ]

    async def main() -> None:
        for i, (args, start, sig, expected) in enumerate(cases):
            blocking = Container.create(root, f"b{i}", config(*args))
            c = await AsyncContainer.create(root, f"a{i}", config(*args))
            try:
                if start:
                    blocking.start()
                    await c.start()
                if sig is not None:
                    blocking.kill(sig)
                    await c.kill(sig)
                status = await c.wait(timeout=30)
                assert status == blocking.wait(timeout=30) == expected
                assert status.returncode == c.returncode
                assert await c.wait() == status  # once known, again at once
                assert c.status is Status.STOPPED
                # recorded for other processes' load, as the blocking wait records it
                assert Container.load(root, f"a{i}").state().exit_status == status
            finally:
                blocking.delete(force=True)
                await cleanup(c)

    run(main())


def test_wait_with_a_timeout_and_several_waiters(root, config):
    async def main() -> None:
        c = await AsyncContainer.run(root, "w", config("sh", "-c", "sleep 0.5; exit 3"))
        try:
            began = time.monotonic()
            with pytest.raises(TimeoutError, match="did not exit within 0.1 s"):
                await c.wait(timeout=0.1)
            assert 0.1 <= time.monotonic() - began < 0.4
            assert c.status is Status.RUNNING  # a timeout stops nothing
            # several coroutines await one container (through two wrappers of
            # the same object too): one reader serves them all
            twin = AsyncContainer(c.container)
            a, b, d = await asyncio.gather(c.wait(), twin.wait(timeout=30), c.wait())
            assert a == b == d == ExitStatus(code=3)
            assert no_reader(c.container._pidfd)  # type: ignore[arg-type]
        finally:
            await cleanup(c)

    run(main())


def test_a_hundred_containers_awaited_at_once_without_a_thread_each(root, config, quiet_pool):
    n = 100

    async def main() -> None:
        # The library's one process-wide helper thread (the netns pool) starts
        # with the first container: start it before counting.
        warm = await AsyncContainer.run(root, "warm", config("true"))
        await warm.wait(timeout=30)
        await warm.delete()
        threads = threading.active_count()
        fd_count = len(open_fds())
        seen_threads: list[int] = []
        cs: list[AsyncContainer] = []

        async def sample(stop: asyncio.Event) -> None:
            while not stop.is_set():
                seen_threads.append(threading.active_count())
                await asyncio.sleep(0.02)

        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(stop))
        try:
            for i in range(n):
                cs.append(await AsyncContainer.create(root, f"m{i}", config("sh", "-c", f"sleep 1; exit {i}")))
            began = time.monotonic()
            for c in cs:
                await c.start()
            assert all(c.status is Status.RUNNING for c in cs)
            statuses = await asyncio.gather(*(c.wait(timeout=60) for c in cs))
            elapsed = time.monotonic() - began
            assert [s.code for s in statuses] == list(range(n))
            assert 1 <= elapsed < 5, f"awaited one after another? {elapsed:.1f} s"
            await asyncio.gather(*(c.delete() for c in cs))
        finally:
            stop.set()
            await sampler
            await cleanup(*cs)
        assert len(seen_threads) > 10
        assert max(seen_threads) == threads, f"threads grew from {threads} to {max(seen_threads)}"
        assert threading.active_count() == threads
        assert Container.list(root) == []
        assert len(open_fds()) == fd_count

    run(main())


# ---- stop, delete, async with -------------------------------------------------------


def test_stop_and_delete(root, config):
    async def main() -> None:
        a = await AsyncContainer.run(root, "st1", config("sh", "-c", "trap 'exit 5' TERM; sleep 60 & wait"))
        b = await AsyncContainer.run(root, "st2", config("sleep", "60"))  # pid 1: SIGTERM is ignored
        c = await AsyncContainer.create(root, "st3", config("true"))
        try:
            await asyncio.sleep(0.1)  # (the trap is set)
            assert await a.stop(timeout=10) == ExitStatus(code=5)
            began = time.monotonic()
            assert await b.stop(timeout=0.3) == ExitStatus(signal=signal.SIGKILL)
            assert time.monotonic() - began >= 0.3
            for x in (a, b):
                await x.delete()
            assert c.status is Status.CREATED
            await c.delete()  # a created one is killed first
            with pytest.raises(ContainerNotFound):
                await c.delete()
            assert Container.list(root) == []
        finally:
            await cleanup(a, b, c)

    run(main())


def test_async_with_deletes_even_when_the_task_is_cancelled(root, config):
    async def main() -> None:
        entered = asyncio.Event()

        async def body() -> None:
            async with await AsyncContainer.run(root, "cm", config("sleep", "60")) as c:
                entered.set()
                await c.wait()

        task = asyncio.create_task(body())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert os.listdir(root) == []

    run(main())


# ---- logs ---------------------------------------------------------------------------


def test_logs_follow_sees_lines_as_they_come_and_ends_with_the_container(root, config):
    script = "for i in 1 2 3; do echo $i; sleep 0.3; done; echo done >&2"

    async def main() -> None:
        c = await AsyncContainer.run(root, "lg", config("sh", "-c", script), log=LogConfig())
        try:
            began = time.monotonic()
            seen: list[tuple[str, bytes, float]] = []
            ticks = 0

            async def ticker() -> None:  # the loop stays free while the log is followed
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.05)
                    ticks += 1

            t = asyncio.create_task(ticker())
            async with c.logs(follow=True) as stream:
                async for e in stream:
                    seen.append((e.stream, e.data, time.monotonic() - began))
            t.cancel()
            assert [(s, d) for s, d, _ in seen] == [
                ("stdout", b"1\n"), ("stdout", b"2\n"), ("stdout", b"3\n"), ("stderr", b"done\n")
            ]  # fmt: skip
            assert seen[0][2] < seen[2][2] - 0.4  # as they came, not all at the end
            assert ticks >= 10
            # the stream ended with the container's output: it has exited
            assert (await c.wait(timeout=5)).code == 0
            assert [e.data async for e in c.logs(tail=2)] == [b"3\n", b"done\n"]
            assert len([e async for e in c.logs()]) == 4
        finally:
            await cleanup(c)

    run(main())


def test_logs_follow_through_rotation_and_errors(root, config):
    script = "i=0; while [ $i -lt 60 ]; do echo line-$i; i=$((i+1)); [ $((i % 10)) = 0 ] && sleep 0.05; done"

    async def main() -> None:
        c = await AsyncContainer.run(root, "rot", config("sh", "-c", script), log=LogConfig(max_size=250, max_files=50))
        plain = await AsyncContainer.run(root, "nolog", config("true"))
        try:
            datas = [e.data async for e in c.logs(follow=True)]
            assert datas == [f"line-{i}\n".encode() for i in range(60)]
            with pytest.raises(PyContainerError, match="without log"):
                await plain.logs(follow=True).__anext__()
        finally:
            await cleanup(c, plain)

    run(main())


def test_a_cancelled_log_read_leaves_no_reader_and_aclose_frees_its_fds(root, config, quiet_pool):
    async def main() -> None:
        c = await AsyncContainer.run(root, "lgc", config("sh", "-c", "echo one; sleep 60"), log=LogConfig())
        try:
            before = open_fds()
            stream = c.logs(follow=True)
            assert isinstance(stream, LogStream)
            assert (await stream.__anext__()).data == b"one\n"
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(stream.__anext__(), 0.2)
            watch = stream._watch
            assert watch is not None and no_reader(watch._fd)
            async with await c.exec(["sh", "-c", "echo two > /proc/1/fd/1"]) as p:  # (into the log)
                await p.wait(timeout=10)
            assert (await asyncio.wait_for(stream.__anext__(), 10)).data == b"two\n"  # still usable
            new = set(open_fds().values()) - set(before.values())
            assert new == {"anon_inode:inotify", os.path.join(c.container.dir, "container.log")}
            await stream.aclose()
            assert open_fds() == before
            with pytest.raises(StopAsyncIteration):
                await stream.__anext__()
        finally:
            await cleanup(c)

    run(main())


def test_the_log_stream_ends_when_the_container_is_deleted(root, config):
    async def main() -> None:
        c = await AsyncContainer.run(root, "lgd", config("sleep", "60"), log=LogConfig())
        try:
            stream = c.logs(follow=True)
            reader = asyncio.create_task(stream.__anext__())
            await asyncio.sleep(0.1)
            assert not reader.done()
            await c.delete(force=True)
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(reader, 10)
        finally:
            await cleanup(c)

    run(main())


# ---- exec and stdio -----------------------------------------------------------------


def test_exec_streams_stdout_and_stderr_and_takes_stdin(root, config):
    echo = "while read line; do echo out:$line; echo err:$line >&2; done; exit 4"

    async def main() -> None:
        c = await AsyncContainer.run(root, "ex", config("sleep", "60"))
        try:
            async with await c.exec(["sh", "-c", echo], stdin=PIPE, stdout=PIPE, stderr=PIPE) as p:
                assert isinstance(p, AsyncExecProcess)
                assert p.stdin is not None and p.stdout is not None and p.stderr is not None
                for word in (b"a", b"b"):
                    # one line at a time: each answer comes while the process still runs
                    p.stdin.write(word + b"\n")
                    await p.stdin.drain()
                    assert await asyncio.wait_for(p.stdout.readline(), 10) == b"out:" + word + b"\n"
                    assert await asyncio.wait_for(p.stderr.readline(), 10) == b"err:" + word + b"\n"
                    assert p.returncode is None
                p.stdin.close()
                assert await p.stdout.read() == b""
                assert await p.wait(timeout=10) == ExitStatus(code=4)
                assert p.returncode == 4
            # communicate, as asyncio's
            async with await c.exec(["sh", "-c", "cat; echo bye >&2"], stdin=PIPE, stdout=PIPE, stderr=PIPE) as p:
                assert await p.communicate(b"x" * 200_000, timeout=30) == (b"x" * 200_000, b"bye\n")
            # output goes out in pieces as it is made
            script = "for i in 1 2 3; do echo $i; sleep 0.2; done"
            async with await c.exec(["sh", "-c", script], stdout=PIPE) as p:
                assert p.stdout is not None
                times = []
                began = time.monotonic()
                while line := await p.stdout.readline():
                    times.append((line, time.monotonic() - began))
                assert [x for x, _ in times] == [b"1\n", b"2\n", b"3\n"]
                assert times[0][1] < times[2][1] - 0.3
                assert (await p.wait()).code == 0
            # async with kills one still running
            async with await c.exec(["sleep", "60"]) as p:
                pass
            assert p.returncode == -signal.SIGKILL
        finally:
            await cleanup(c)

    run(main())


def test_container_stdio_as_streams(root, config):
    async def main() -> None:
        cfg = config("sh", "-c", "read x; echo got:$x; echo oops >&2; exit 2")
        c = await AsyncContainer.run(root, "io", cfg, stdin=PIPE, stdout=PIPE, stderr=PIPE)
        try:
            assert await c.communicate(b"hi\n", timeout=30) == (b"got:hi\n", b"oops\n")
            assert c.returncode == 2
        finally:
            await cleanup(c)

    run(main())


def test_a_cancelled_wait_leaves_no_reader_no_fd_and_no_zombie(root, config, quiet_pool):
    async def main() -> None:
        c = await AsyncContainer.run(root, "cx", config("sleep", "60"))
        try:
            pidfd = c.container._pidfd
            assert pidfd is not None
            before = open_fds()
            task = asyncio.create_task(c.wait())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert no_reader(pidfd)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.wait(), 0.05)
            with pytest.raises(TimeoutError):
                await c.wait(timeout=0.05)
            assert no_reader(pidfd)
            assert open_fds() == before
            assert c.status is Status.RUNNING  # the container keeps running

            # an exec'd process: the same
            p = await c.exec(["sleep", "60"], stdout=PIPE)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(p.wait(), 0.05)
            assert no_reader(p.handle._pidfd)  # type: ignore[arg-type]
            await p.kill(signal.SIGKILL)
            assert (await p.wait(timeout=10)).signal == signal.SIGKILL
            p.close()
            await asyncio.sleep(0)  # (the transports let go of their pipes)
            assert open_fds() == before

            # cancelled while its streams are set up, an exec leaves no process
            # and no pipe; nor does a create leave a container
            for make in (
                lambda: c.exec(["sleep", "60"], stdin=PIPE, stdout=PIPE, stderr=PIPE),
                lambda: AsyncContainer.create(root, "half", config("true"), stdout=PIPE, stderr=PIPE),
            ):
                task = asyncio.create_task(make())
                await asyncio.sleep(0)  # (it runs to its first await: the first stream's set-up)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                await asyncio.sleep(0)  # (the transports let go of their pipes)
                assert open_fds() == before
                assert sorted(os.listdir(root)) == ["cx"]

            # a stop cancelled after its signal: the container is left as it was then
            stopping = asyncio.create_task(c.stop(timeout=30))
            await asyncio.sleep(0.05)
            stopping.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stopping
            assert no_reader(pidfd) and c.status is Status.RUNNING  # pid 1 ignored SIGTERM
        finally:
            await cleanup(c)
        assert os.listdir(root) == []

    run(main())


# ---- the docs ---------------------------------------------------------------------


def test_the_docs_example_runs(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("PYCONTAINER_ROOT", str(tmp_path / "state"))
    monkeypatch.setenv("PYCONTAINER_DATA_ROOT", data_root)
    doc = pathlib.Path(__file__).resolve().parent.parent / "docs" / "asyncio.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, str(doc), "exec"), {"__name__": "__doc_example__"})
    assert os.listdir(tmp_path / "state") == []


# ---- errors -------------------------------------------------------------------------


def test_errors(root, config):
    async def main() -> None:
        with pytest.raises(ContainerNotFound):
            await AsyncContainer.load(root, "nope")
        with pytest.raises(InitError) as e:
            await AsyncContainer.run(root, "bad", config("no-such-tool"))
        assert e.value.path == "no-such-tool"
        assert os.listdir(root) == []  # nothing left behind
        c = await AsyncContainer.run(root, "er", config("sleep", "60"), stdout=PIPE)
        try:
            with pytest.raises(ContainerExists):
                await AsyncContainer.create(root, "er", config("true"))
            with pytest.raises(InvalidStateTransition):
                await c.start()
            with pytest.raises(InvalidStateTransition):
                await c.delete()  # running: only with force
            assert c.stdout is not None and not c.stdout.at_eof()  # refused before anything was closed
            loaded = await AsyncContainer.load(root, "er")
            assert loaded.status is Status.RUNNING and loaded.pid == c.pid
            loaded.close()
            await c.kill(signal.SIGKILL)
            await c.wait(timeout=10)
            with pytest.raises(InvalidStateTransition):
                await c.exec(["true"])
            with pytest.raises(InvalidStateTransition):
                await c.kill()
            await c.delete()
            with pytest.raises(ContainerNotFound):
                await c.kill()
        finally:
            await cleanup(c)

    run(main())
