"""The one way analysis writes a file: a unique temp file beside the target (created exclusively), flushed and
fsynced, then renamed over it. A reader sees the old file or the new one, never half of one, and two writers of
the same report never share a temp file. Used for report.md, every figure and every JSON the CLI writes.

Everything analysis writes is derived from the run records and can be written again by rerunning the command,
so the folder is not fsynced after the rename: a crash right after it may bring back the previous report, never
a broken one. Run records, the primary data, are written by speedrun.writer, which does make the rename durable
(analysis may not import speedrun, so it keeps this writer of its own)."""
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
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def write_figure(figure, path: str | Path, dpi: int = 120) -> Path:
    """Render a matplotlib Figure to PNG in memory and write it atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return write_atomic(path, buffer.getvalue())
