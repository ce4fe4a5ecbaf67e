"""The one way analysis writes a file: common.jsonfile's atomic writer (a unique temp file beside the target,
created exclusively, flushed and fsynced, then renamed over it), after creating the folder. A reader sees the old
file or the new one, never half of one, and two writers of the same report never share a temp file. Used for
report.md, every figure and every JSON the CLI writes."""
from __future__ import annotations

import io
from pathlib import Path

from common.jsonfile import atomic_write

__all__ = ["write_atomic", "write_figure"]


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8) to `path` atomically; creates the parent folder. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, data)


def write_figure(figure, path: str | Path, dpi: int = 120) -> Path:
    """Render a matplotlib Figure to PNG in memory and write it atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return write_atomic(path, buffer.getvalue())
