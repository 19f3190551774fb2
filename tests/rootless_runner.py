"""Runs one container as the (non-root) user it is started as, for the
rootless tests: reads a JSON spec on stdin, prints a JSON result.  Started by
the ``rootless`` fixture of tests/conftest.py; not a test module itself."""

import json
import sys
import warnings


def main() -> None:
    spec = json.load(sys.stdin)
    from pycontainer import (
        PIPE,
        Capabilities,
        Container,
        ContainerConfig,
        Mount,
        Process,
        PyContainerError,
        Resources,
        User,
    )

    caps = spec.get("caps")
    process = Process(
        args=spec["args"],
        user=User(*spec["user"]) if spec.get("user") else User(),
        capabilities=Capabilities.docker(**caps) if caps is not None else None,
        no_new_privileges=spec.get("nnp", False),
        cwd=spec.get("cwd", "/"),
    )
    if spec.get("leak"):
        # a host directory fd left open (not close-on-exec) at a known number
        import os

        fd = os.open(spec["leak"], os.O_RDONLY | os.O_DIRECTORY)
        os.dup2(fd, 100, inheritable=True)
    result = {"code": None, "out": "", "err": "", "error": None, "warnings": [], "maps": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cfg = ContainerConfig(
                process=process,
                rootfs=spec["rootfs"],
                mounts=[Mount(d, s, t, o) for d, s, t, o in spec.get("mounts", [])],
                seccomp=spec.get("seccomp", "default"),
                cgroups=spec.get("cgroups", True),
                cgroups_path=spec.get("cgroups_path"),
                resources=Resources(**spec.get("resources", {})),
            )
            with Container.run(spec["state"], spec.get("id", "rl"), cfg, stdout=PIPE, stderr=PIPE) as c:
                with open(f"/proc/{c.pid}/uid_map") as f:
                    result["maps"] = f.read()
                out, err = c.communicate(timeout=60)
                result.update(code=c.wait().code, out=out.decode(), err=err.decode())
        except PyContainerError as e:
            result["error"] = {
                "type": type(e).__name__,
                "message": str(e),
                **{k: getattr(e, k, None) for k in ("field", "step", "errno", "path")},
            }
        result["warnings"] = [str(w.message) for w in caught]
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
