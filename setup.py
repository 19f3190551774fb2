"""Build glue that pyproject.toml cannot express: the cffi shim and the static init.

``cffi_modules`` compiles csrc/shim.c into ``pycontainer._shim``.  The
``build_ext`` subclass also links csrc/init.c and csrc/shim.c statically into
``pycontainer/_pcinit`` (the ``--init`` pid 1, and the helper that runs the
rest of a plan after PC_OP_HANDOFF), next to the extension, for both
``pip install .`` and ``pip install -e .``.
"""

import os
import pathlib
import shlex
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = pathlib.Path(__file__).resolve().parent


class BuildExtWithInit(build_ext):
    def run(self) -> None:
        super().run()
        if self.inplace:
            dest = HERE / "pycontainer"
        else:
            dest = pathlib.Path(self.build_lib) / "pycontainer"
        dest.mkdir(parents=True, exist_ok=True)
        cc = shlex.split(os.environ.get("CC", "cc"))
        out = dest / "_pcinit"
        csrc = HERE / "csrc"
        cmd = [*cc, "-static", "-O2", "-s", "-Wall", f"-I{csrc}", "-o", str(out), str(csrc / "init.c"), str(csrc / "shim.c")]
        self.announce(" ".join(cmd), level=2)
        subprocess.run(cmd, check=True)

    def get_outputs(self):
        outputs = super().get_outputs()
        base = HERE if self.inplace else pathlib.Path(self.build_lib)
        return [*outputs, str(base / "pycontainer" / "_pcinit")]


setup(
    cffi_modules=["csrc/build_shim.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtWithInit},
)
