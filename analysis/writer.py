"""The one way analysis writes a file: a unique temp file beside the target, flushed and fsynced, then renamed
over it. A reader (or a crash) sees the old file or the new one, never half of one, and two writers of the same
report never share a temp file. Used for report.md, every figure and every JSON the CLI writes."""
from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

__all__ = ["write_atomic", "write_figure"]


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8) to `path` atomically; creates the parent folder. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
    return path


def write_figure(figure, path: str | Path, dpi: int = 120) -> Path:
    """Render a matplotlib Figure to PNG in memory and write it atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return write_atomic(path, buffer.getvalue())
