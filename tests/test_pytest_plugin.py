"""The pytest plugin (issue 9): its fixtures run in pytest sessions of their
own (pytester), each on a state root and a data root of the test's, with a
bridge network whose host side is a throwaway network namespace; after each
run nothing may be left: no container, state directory, cgroup, veth or
published port (and the host_guard of conftest.py checks the host's mounts,
processes, cgroups and network around every test here)."""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Iterator

import pytest

from pycontainer import Container, _bridge, _nft, _netpool
from pycontainer.network import NetworkStore

pytest_plugins = ["pytester"]

# Imported before any inner session: pytester forgets the modules an
# in-process run imports, and these keep state, such as the image cache,
# whose classes must stay the ones the next session's isinstance checks see.
for _module in ("images", "logs", "network", "pytest_plugin", "readiness", "volumes"):
    importlib.import_module(f"pycontainer.{_module}")

SUBNET = "10.131.0.0/24"


@pytest.fixture
def hostns() -> Iterator[str]:
    """A throwaway network namespace that plays the host of the network."""
    fd = _netpool.new_netns()
    try:
        yield f"/proc/{os.getpid()}/fd/{fd}"
    finally:
        os.close(fd)


@pytest.fixture
def lan(root: str, hostns: str) -> Iterator[str]:
    """A bridge network "lan" under the test's state root, its bridge in ``hostns``."""
    store = NetworkStore(root)
    store.create("lan", subnet=SUBNET, host_netns=hostns)
    try:
        yield "lan"
    finally:
        store.remove("lan", wait=30)


@pytest.fixture
def token() -> str:
    """Starts the names of the containers a test's inner session makes."""
    return "t" + os.urandom(3).hex()


def _cgroups_named(prefix: str) -> list[str]:
    """Cgroup directories (any hierarchy, any depth) of containers whose id starts with ``prefix``."""
    found = []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(top, d) for d in dirs if d.startswith(prefix)]
        dirs[:] = [d for d in dirs if not d.startswith(prefix)]
    return found


def _veths(ns: str) -> list[str]:
    return [n for n in _bridge.links(ns) if n.startswith("pcv")]


def _published(ns: str) -> set[tuple[str | None, str, int]]:
    return _nft.published(ns)


def assert_nothing_left(root: str, hostns: str, prefix: str) -> None:
    """No container, state directory or lease under ``root``, no cgroup of a
    container named ``prefix``..., no published port; the veths (which the
    kernel removes with their namespaces, at its own pace) gone within 30 s."""
    assert Container.list(root) == []
    assert [n for n in os.listdir(root) if n != ".networks"] == []
    assert NetworkStore(root).leases("lan") == {}
    assert _cgroups_named(prefix) == []
    assert _published(hostns) == set()
    deadline = time.monotonic() + 30
    while _veths(hostns) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _veths(hostns) == []


# (other plugins off: an in-process session imports them afresh each time)
QUIET = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark"]


def _args(root: str, data_root: str) -> list[str]:
    return [*QUIET, f"--pycontainer-root={root}", f"--pycontainer-data-root={data_root}",
            "--pycontainer-network=lan", "--pycontainer-timeout=20"]  # fmt: skip


def test_the_plugin_is_registered_by_its_entry_point(pytester: pytest.Pytester) -> None:
    from importlib.metadata import entry_points

    assert [e.value for e in entry_points(group="pytest11") if e.name == "pycontainer"] == ["pycontainer.pytest_plugin"]
    pytester.makepyfile(
        """
        def test_fixtures(request):
            for name in ("pycontainer", "pycontainer_class", "pycontainer_module", "pycontainer_session",
                         "pycontainer_settings"):
                request.getfixturevalue(name)
        """
    )
    pytester.runpytest(*QUIET).assert_outcomes(passed=1)
    help_text = pytester.runpytest(*QUIET, "--help").stdout.str()
    for option in ("--pycontainer-root", "--pycontainer-data-root", "--pycontainer-network", "--pycontainer-timeout"):
        assert option in help_text


def test_pass_path_tcp_readiness_in_a_throwaway_namespace(
    pytester: pytest.Pytester, root: str, data_root: str, lan: str, hostns: str, token: str
) -> None:
    """busybox httpd on the network, ready once its port accepts (probed from
    the throwaway namespace), fetched through a host port picked for it."""
    pytester.makepyfile(
        f"""
        import os
        from pycontainer.readiness import TCPPort

        def test_web(pycontainer):
            web = pycontainer(command=["sh", "-c", "mkdir /www; echo hello > /www/index.html; httpd -f -p 80 -h /www"],
                              name="{token}", ports=[80, "127.0.0.1::8080"], env={{"A": "1"}},
                              memory="64m", pids=50, cpus=0.5, ready=TCPPort(80))
            assert web.id.startswith("{token}-") and len(web.id) == len("{token}-") + 8
            assert web.network == "lan" and web.address.startswith("10.131.0.")
            assert web.host_netns == {hostns!r}
            port = web.host_port(80)
            assert 1024 < port < 65536 and web.endpoint(80) == ("127.0.0.1", port)
            assert web.ports[1].host_ip == "127.0.0.1" and web.host_port(8080) != port
            with web.connect(80) as s:   # through the published port, in the throwaway namespace
                s.sendall(b"GET /index.html HTTP/1.0\\r\\n\\r\\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            assert b"200 OK" in data and data.endswith(b"hello\\n"), data
            r = web.exec(["sh", "-c", "echo $A"])
            assert r.exit_code == 0 and r.stdout == b"1\\n", r
            stats = web.container.stats()
            assert stats.pids.limit == 50 and stats.memory.limit == 64 << 20, stats
            assert os.path.isdir(web.container.dir)
        """
    )
    result = pytester.runpytest(*_args(root, data_root))
    result.assert_outcomes(passed=1)
    assert_nothing_left(root, hostns, token)


def test_fail_path_and_the_scopes(
    pytester: pytest.Pytester, root: str, data_root: str, lan: str, hostns: str, token: str
) -> None:
    """Failing tests still remove their containers; function, class, module
    and session scopes each remove theirs at their end."""
    pytester.makepyfile(
        f"""
        import os
        import pytest

        seen = {{}}

        @pytest.fixture(scope="module")
        def shared(pycontainer_module):
            return pycontainer_module(command=["sleep", "100"], name="{token}-mod")

        @pytest.fixture(scope="session")
        def whole(pycontainer_session):
            return pycontainer_session(command=["sleep", "100"], name="{token}-ses")

        def test_first(pycontainer, shared, whole):
            seen["first"] = pycontainer(command=["sleep", "100"], name="{token}-fn")
            seen["shared"] = shared.id
            assert 1 == 2, "this test fails"

        def test_second(pycontainer, shared, whole):
            assert seen["first"].removed          # the failed test's container is gone
            assert shared.id == seen["shared"] and not shared.removed
            assert pycontainer(command=["true"], network="none").network is None

        class TestClass:
            def test_in_class(self, pycontainer_class):
                type(self).made = pycontainer_class(command=["sleep", "100"], name="{token}-cls")
                raise RuntimeError("this one fails too")

        def test_after_class():
            assert TestClass.made.removed
        """
    )
    result = pytester.runpytest(*_args(root, data_root))
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*this test fails*", "*this one fails too*"])
    assert_nothing_left(root, hostns, token)


def test_error_path_bad_image_and_bad_input(
    pytester: pytest.Pytester, root: str, data_root: str, lan: str, hostns: str, token: str
) -> None:
    """A fixture that cannot start its container errors the test with the
    library's typed error; bad arguments are typed errors too; nothing stays."""
    pytester.makepyfile(
        f"""
        import pytest
        from pycontainer import ConfigError, ImageError, NetworkError

        @pytest.fixture
        def db(pycontainer):
            first = pycontainer(command=["sleep", "100"], name="{token}-ok")   # made, then removed
            return first, pycontainer("localhost/no-such-image:1", name="{token}-bad")

        def test_uses_a_bad_image(db):
            pass

        @pytest.mark.parametrize("kw, error, match", [
            (dict(ports=["99999:80"]), NetworkError, "published port"),
            (dict(ports=[80], network="none"), NetworkError, "need a bridge network"),
            (dict(volumes={{"/etc": "relative"}}), ConfigError, "destination"),
            (dict(volumes={{"/etc": "/x:rx"}}), ConfigError, "ro|rw"),
            (dict(memory="lots"), ConfigError, "memory"),
            (dict(image="localhost/busybox", rootfs="/"), ConfigError, "not both"),
            (dict(command="sleep 1"), ConfigError, "list of strings"),
            (dict(ready=[80]), ConfigError, "not a readiness probe"),
            (dict(command=["no-such-program"]), Exception, "no-such-program"),
        ])
        def test_bad_input(pycontainer, kw, error, match):
            with pytest.raises(error, match=match):
                pycontainer(name="{token}-in", **{{"command": ["sleep", "100"], **kw}})
        """
    )
    result = pytester.runpytest(*_args(root, data_root))
    result.assert_outcomes(errors=1, passed=9)
    result.stdout.fnmatch_lines(["*ImageError*no-such-image*"])
    assert_nothing_left(root, hostns, token)


def test_readiness_timeout_and_early_exit(
    pytester: pytest.Pytester, root: str, data_root: str, lan: str, hostns: str, token: str
) -> None:
    """Not ready in time, or exited first: a ReadinessError naming what was
    waited for and showing the last log lines; the container is gone at once."""
    pytester.makepyfile(
        f"""
        import os
        import pytest
        from pycontainer import Container
        from pycontainer.errors import ReadinessError
        from pycontainer.readiness import Command, LogLine, TCPPort

        @pytest.fixture
        def never(pycontainer):
            return pycontainer(command=["sh", "-c", "echo starting up; echo oops >&2; sleep 100"],
                               name="{token}-never", ready=TCPPort(5432, timeout=0.5))

        def test_fixture_times_out(never):
            pass

        def test_timeout_is_a_typed_error(pycontainer, pytestconfig):
            root = pytestconfig.getoption("pycontainer_root")
            with pytest.raises(ReadinessError) as info:
                pycontainer(command=["sh", "-c", "for i in $(seq 30); do echo line $i; done; sleep 100"],
                            name="{token}-slow", ready=[LogLine("line 30"), Command(["false"])], timeout=0.3)
            e = info.value
            assert e.waited_for == "the command ['false'] to exit 0" and e.exit_status is None
            assert "not within 0.3 s" in e.reason and "ended with code 1" in e.reason, e.reason
            assert e.log_tail == tuple(f"stdout: line {{i}}" for i in range(11, 31))   # the last 20
            assert Container.list(root) == []   # removed at once

        def test_early_exit(pycontainer):
            with pytest.raises(ReadinessError, match="exited first, with code 3") as info:
                pycontainer(command=["sh", "-c", "echo bye; exit 3"], name="{token}-exit",
                            ready=TCPPort(80, timeout=20))
            assert info.value.exit_status.code == 3 and info.value.log_tail == ("stdout: bye",)
        """
    )
    started = time.monotonic()
    result = pytester.runpytest(*_args(root, data_root))
    result.assert_outcomes(errors=1, passed=2)
    result.stdout.fnmatch_lines([
        "*ReadinessError: container '" + token + "-never-*' is not ready: waited for TCP port 5432 on 10.131.0.*"
        " to accept a connection (from the network namespace " + hostns + "): not within 0.5 s*",
        "*its last 2 log lines:*",
        "*stdout: starting up*",
        "*stderr: oops*",
    ])  # fmt: skip
    assert time.monotonic() - started < 15  # the early exit did not wait its 20 s
    assert_nothing_left(root, hostns, token)


def test_log_line_readiness(
    pytester: pytest.Pytester, root: str, data_root: str, lan: str, hostns: str, token: str
) -> None:
    pytester.makepyfile(
        f"""
        from pycontainer.readiness import LogLine

        def test_waits_for_the_line_on_its_stream(pycontainer):
            c = pycontainer(command=["sh", "-c", "echo ready; sleep 0.3; echo ready >&2; sleep 100"],
                            name="{token}", ready=LogLine("^ready$", stream="stderr"))
            assert c.logs(stream="stderr") == "ready\\n" and c.logs() == "ready\\nready\\n"
        """
    )
    pytester.runpytest(*_args(root, data_root)).assert_outcomes(passed=1)
    assert_nothing_left(root, hostns, token)


def test_exec_readiness(
    pytester: pytest.Pytester, root: str, data_root: str, lan: str, hostns: str, token: str
) -> None:
    pytester.makepyfile(
        f"""
        import time
        from pycontainer.readiness import Command

        def test_waits_for_the_command(pycontainer):
            started = time.monotonic()
            c = pycontainer(command=["sh", "-c", "sleep 0.4; touch /tmp/ready; sleep 100"], name="{token}",
                            ready=Command(["test", "-f", "/tmp/ready"]))
            assert time.monotonic() - started >= 0.4
            assert c.exec(["ls", "/tmp"]).stdout == b"ready\\n"
        """
    )
    pytester.runpytest(*_args(root, data_root)).assert_outcomes(passed=1)
    assert_nothing_left(root, hostns, token)


def test_a_bad_option_is_a_config_error(pytester: pytest.Pytester, root: str) -> None:
    pytester.makeini("[pytest]\npycontainer_timeout = soon\n")
    pytester.makepyfile("def test_x(pycontainer):\n    pass\n")
    result = pytester.runpytest(*QUIET, f"--pycontainer-root={root}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ConfigError: pycontainer_timeout: 'soon' is not a number of seconds > 0*"])


def test_two_xdist_workers_get_distinct_ids_and_host_ports(
    pytester: pytest.Pytester, root: str, data_root: str, lan: str, hostns: str, token: str, tmp_path
) -> None:
    """Two workers, each holding a container with a picked host port until it
    has seen the other's: their ids (with the worker's id) and ports differ,
    and each serves its own."""
    record = tmp_path / "record"
    record.mkdir()
    test = f"""
        import json, os, time
        from pycontainer.readiness import TCPPort

        def _both(pycontainer, n):
            me = os.environ["PYTEST_XDIST_WORKER"]
            c = pycontainer(command=["sh", "-c", "mkdir /www; echo $WORKER > /www/w; httpd -f -p 80 -h /www"],
                            name="{token}", env={{"WORKER": me}}, ports=[80], ready=TCPPort(80))
            with open(os.path.join({str(record)!r}, me), "w") as f:
                json.dump([c.id, c.host_port(80), c.address], f)
            deadline = time.monotonic() + 30
            while len(os.listdir({str(record)!r})) < 2:   # the other worker's container lives too
                assert time.monotonic() < deadline, "the other worker never came"
                time.sleep(0.05)
            with c.connect(80) as s:   # its own container, through its own port
                s.sendall(b"GET /w HTTP/1.0\\r\\n\\r\\n")
                assert s.makefile("rb").read().endswith(b"\\r\\n\\r\\n" + me.encode() + b"\\n")

        def test_one(pycontainer):
            _both(pycontainer, 1)

        def test_two(pycontainer):
            _both(pycontainer, 2)
        """
    pytester.makepyfile(test)
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "--dist", "load", *_args(root, data_root))
    result.assert_outcomes(passed=2)
    seen = {}
    for worker in os.listdir(record):
        with open(record / worker) as f:
            seen[worker] = json.load(f)
    assert sorted(seen) == ["gw0", "gw1"], seen
    ids, ports, addresses = zip(*seen.values(), strict=True)
    assert all(seen[w][0].startswith(f"{token}-{w}-") for w in seen), seen
    assert len(set(ids)) == len(set(ports)) == len(set(addresses)) == 2, seen
    assert_nothing_left(root, hostns, token)


def test_tcp_readiness_without_a_bridge_probes_inside_the_containers_namespace(
    root: str, data_root: str, rootfs: str
) -> None:
    """(The library's probe, directly.)  With network none the port is only
    reachable from inside: 127.0.0.1 in the container's own namespace."""
    from pycontainer import ContainerConfig, LogConfig, Process
    from pycontainer.errors import ReadinessError
    from pycontainer.readiness import TCPPort, wait_ready

    serve = "sleep 0.3; echo up; httpd -f -p 127.0.0.1:8080"
    cfg = ContainerConfig(process=Process(args=["sh", "-c", serve]), rootfs=rootfs)
    with Container.run(root, "local", cfg, network="none", log=LogConfig()) as c:
        with pytest.raises(ReadinessError, match="on 127.0.0.1 to accept a connection in the container's network"):
            wait_ready(c, TCPPort(8080, timeout=0.1))  # not yet: it sleeps first
        wait_ready(c, TCPPort(8080), timeout=10)
        with pytest.raises(
            ReadinessError, match="TCP port 8081 .*not within 0.2 s \\(the last try: Connection refused\\)"
        ):
            wait_ready(c, [TCPPort(8080), TCPPort(8081, timeout=0.2)])


def test_the_docs_example_runs(pytester: pytest.Pytester, root: str, data_root: str, lan: str, hostns: str) -> None:
    """docs/embedding.md's example test module, on the throwaway network."""
    import pathlib
    import re

    doc = (pathlib.Path(__file__).parent.parent / "docs" / "embedding.md").read_text()
    section = doc[doc.index("\n## pytest plugin") :]
    end = section.find("\n## ", 1)  # (the next section, the asyncio one, is not this test's)
    section = section if end < 0 else section[:end]
    (example,) = re.findall(r"```python\n(.*?)```", section, re.S)
    pytester.makepyfile(test_example=example)
    pytester.runpytest(*_args(root, data_root)).assert_outcomes(passed=2)
    assert_nothing_left(root, hostns, "web-")
