"""Build glue that pyproject.toml cannot express: the cffi shim and the static init.

``cffi_modules`` compiles csrc/shim.c into ``pycontainer._shim``.  The
``build_ext`` subclass also links two static programs next to the extension,
for both ``pip install .`` and ``pip install -e .``: ``pycontainer/_pcinit``
(csrc/init.c, the ``--init`` pid 1), ``pycontainer/_pclog`` (csrc/logger.c,
the json-file logger) and ``pycontainer/_pchelper`` (csrc/shim.c
with -DPC_HELPER, freestanding: the helper that runs the rest of a plan after
PC_OP_HANDOFF).
"""

import os
import pathlib
import shlex
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = pathlib.Path(__file__).resolve().parent


class BuildExtWithInit(build_ext):
    """Also link the static programs next to the extension."""

    PROGRAMS = {
        # the --init pid 1 (glibc, static)
        "_pcinit": ["-static", "-O2", "-s", "-Wall", "csrc/init.c"],
        # the json-file logger of detached containers, run on the host
        "_pclog": ["-static", "-O2", "-s", "-Wall", "-Wextra", "csrc/logger.c"],
        # the plan helper PC_OP_HANDOFF execs: freestanding, no libc start-up
        "_pchelper": [
            # -fno-tree-loop-distribute-patterns: gcc would turn the loops of
            # our own memset/strlen into calls to themselves
            "-static", "-nostdlib", "-no-pie", "-fno-pie", "-fno-stack-protector", "-fno-tree-loop-distribute-patterns",
            "-O2", "-s", "-Wall",
            "-DPC_HELPER", "-Icsrc", "csrc/shim.c",
        ],
    }  # fmt: skip

    def run(self) -> None:
        super().run()
        dest = self._dest()
        dest.mkdir(parents=True, exist_ok=True)
        cc = shlex.split(os.environ.get("CC", "cc"))
        for name, args in self.PROGRAMS.items():
            args = [str(HERE / a) if a.startswith("csrc/") else a.replace("-Icsrc", f"-I{HERE / 'csrc'}") for a in args]
            cmd = [*cc, *args, "-o", str(dest / name)]
            self.announce(" ".join(cmd), level=2)
            subprocess.run(cmd, check=True)

    def _dest(self) -> pathlib.Path:
        return (HERE if self.inplace else pathlib.Path(self.build_lib)) / "pycontainer"

    def get_outputs(self):
        return [*super().get_outputs(), *(str(self._dest() / name) for name in self.PROGRAMS)]


setup(
    cffi_modules=["csrc/build_shim.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtWithInit},
)
