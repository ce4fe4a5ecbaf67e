"""The exceptions and warnings the analysis package raises; each message says what was wrong and what to do."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AnalysisError", "NoRecordsError", "NotEnoughPointsError", "RecordWarning", "NotComputed"]


@dataclass(frozen=True)
class NotComputed:
    """Stands where a result could not be computed (a law's prediction at a cell, the comparison with the
    reference): code tells it from a result by its type, and `reason` (also its str) says why, for reading."""

    reason: str

    def __str__(self) -> str:
        return self.reason


class AnalysisError(ValueError):
    """Input the analysis cannot use (missing folder, no records, wrong units); the message says why."""


class NoRecordsError(AnalysisError):
    """A folder holds no usable run records."""


class NotEnoughPointsError(AnalysisError):
    """A fit or test was asked of fewer distinct cells (or runs) than it needs; nothing is invented instead."""

    def __init__(self, what: str, need: int, have: int, unit: str = "distinct cells", hint: str = ""):
        self.what, self.need, self.have, self.unit = what, need, have, unit
        message = f"not enough points for {what}: need ≥{need} {unit}, have {have}"
        super().__init__(message + (f" ({hint})" if hint else ""))


class RecordWarning(UserWarning):
    """A record file was skipped or read with assumptions (corrupt JSON, unknown schema, duplicate run_id)."""
