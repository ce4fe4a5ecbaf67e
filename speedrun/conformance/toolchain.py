"""What torch.compile needs on a GPU besides torch: a C compiler and Python's headers. Inductor's GPU kernels are
Triton kernels, and Triton builds a small C launcher for them with $CC (else gcc, else clang) against Python.h
from sysconfig's include folder. A bare container image often has neither; then every compiled step fails to
build, after minutes, and only the CUDA graph (no compilation) can make the step fast."""
from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path

__all__ = ["toolchain", "without_compile"]


def toolchain() -> dict:
    """{"c_compiler": path or None, "python_headers": folder or None, "ok": both present, "missing": [...]}."""
    named = os.environ.get("CC")
    candidates = [named] if named else ["gcc", "clang"]
    compiler = next((found for found in map(shutil.which, candidates) if found), None)
    include = sysconfig.get_paths().get("include")
    headers = include if include and (Path(include) / "Python.h").is_file() else None
    missing = [what for what, have in (("C compiler", compiler), ("Python headers", headers)) if not have]
    return dict(c_compiler=compiler, python_headers=headers, ok=not missing, missing=missing)


def without_compile(modes: tuple[str, ...]) -> tuple[str, ...]:
    """The fast modes that compile nothing (`graph`), in their order; where none is left, the modes as given."""
    kept = tuple(m for m in modes if "compile" not in m)
    return kept or modes
