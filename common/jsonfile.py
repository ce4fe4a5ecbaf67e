"""Files that readers can trust: one atomic writer (a reader sees the old file or the whole new one, never a part)
and strict JSON (`null`, never the NaN or Infinity tokens that Python's json module writes by default). Records,
locks' neighbours, reports and figures all go through `atomic_write`."""
from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "write_json", "json_text", "strict_json", "fsync_dir"]


def strict_json(value):
    """A copy of `value` that strict JSON can hold: every non-finite float (NaN, ±Infinity) becomes None, at
    any depth of dicts, lists and tuples. Records pass through this where they are made."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def json_text(obj) -> str:
    """`obj` as indented strict JSON text with a final newline. A NaN or infinity here means a producer skipped
    `strict_json`: it fails loudly rather than writing a file that strict readers reject."""
    try:
        return json.dumps(obj, indent=1, allow_nan=False) + "\n"
    except ValueError as exc:
        raise ValueError(f"refusing to write non-strict JSON ({exc}); pass the object through "
                         "common.jsonfile.strict_json first") from exc


def write_json(path: str | Path, obj, *, temp: Path | None = None) -> None:
    """Write `obj` as strict JSON to `path` atomically, creating the folder if needed."""
    path = Path(path)
    text = json_text(obj)  # before touching the disk: a bad object leaves the old file as it was
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text, temp=temp)


def atomic_write_text(path: str | Path, text: str, *, temp: Path | None = None) -> None:
    """`atomic_write` for text (the name the trainer and the scheduler have always called)."""
    atomic_write(path, text, temp=temp)


def atomic_write(path: str | Path, data: str | bytes, *, temp: Path | None = None) -> Path:
    """Write `data` (text as UTF-8) to `path` so that readers see either the old file or the whole new one: a
    temp file in the same folder (created exclusively, so two writers never share one), fsync, os.replace, then
    fsync of the folder so the rename survives a crash. `temp` names the temp file (callers that clean up
    leftovers tag it with their owner); by default a unique hidden sibling `.<name>.<random>.tmp`. On any
    failure the temp file is removed and `path` is untouched. Returns `path`."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = Path(temp) if temp is not None else path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename, a new link) to disk; best effort where the OS does not allow it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
