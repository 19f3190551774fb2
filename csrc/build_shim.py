"""cffi build script: compiles csrc/shim.c into ``pycontainer._shim``.

Out-of-line API mode: the C sources are compiled by the platform compiler and
``shim.h`` is the whole interface (its declarations are fed to cdef).
"""

import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent


def _cdef_text() -> str:
    """shim.h without preprocessor lines, with #define constants kept."""
    out = []
    for line in (HERE / "shim.h").read_text().splitlines():
        m = re.match(r"#define\s+(PC_\w+)\s+\S", line)
        if m:
            out.append(f"#define {m.group(1)} ...")
        elif not line.startswith("#"):
            out.append(line)
    return "\n".join(out)


ffibuilder = FFI()
ffibuilder.cdef(_cdef_text())
# libseccomp, for compiling seccomp profiles in the parent (csrc/seccomp_api.h)
ffibuilder.cdef("\n".join(ln for ln in (HERE / "seccomp_api.h").read_text().splitlines() if not ln.lstrip().startswith(("/*", "*"))))
ffibuilder.set_source(
    "pycontainer._shim",
    '#include "shim.h"\n#include <seccomp.h>',
    libraries=["seccomp"],
    sources=[str(HERE.relative_to(HERE.parent) / "shim.c")],
    include_dirs=[str(HERE.relative_to(HERE.parent))],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
