"""Files that readers can trust: atomic writes and strict JSON. They live in common.jsonfile (the scheduler and
the analysis write with them too); the trainer's modules import them from here."""
from __future__ import annotations

from common.jsonfile import atomic_write_text, fsync_dir, json_text, strict_json, write_json

__all__ = ["atomic_write_text", "write_json", "json_text", "strict_json", "fsync_dir"]
