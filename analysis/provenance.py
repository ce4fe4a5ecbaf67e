"""Which trainer made a study's records, and whether the checkout at hand would make them again.

Every record carries `git_commit` and `git_dirty` (results/README.md). Two statements follow from them:
- `trainer_lines` (in the report, from the records alone, so a report regenerates byte for byte anywhere): the
  records come from more than one commit, or from a work tree with uncommitted changes — runs of one study made
  by different code, which a from-scratch run with one trainer need not reproduce;
- `checkout_notes` (printed by `analysis report`, never written into report.md, because it depends on the
  checkout, not on the records): a record's commit whose trainer code (`speedrun/`, its conformance checks aside)
  differs from this checkout's. That needs git, which analysis runs as a subprocess (it may not import the
  trainer); outside a git checkout, or for a commit this repository does not hold, it says it cannot tell.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = ["TrainerOrigin", "trainer_origin", "trainer_lines", "checkout_notes", "TRAINER_PATHS"]

ROOT = Path(__file__).resolve().parents[1]  # the checkout this analysis package sits in
# The trainer's code, as git pathspecs: what makes a record's numbers. The conformance checks against the seed
# live beside it (speedrun/conformance, formerly speedrun/verify and speedrun/seed_*.py) and change no run.
TRAINER_PATHS = ("speedrun", ":(exclude)speedrun/conformance", ":(exclude)speedrun/verify",
                 ":(exclude)speedrun/seed_diff.py", ":(exclude)speedrun/seed_load.py",
                 ":(exclude)speedrun/seed_clock.py", ":(exclude)speedrun/whiten_compare.py")
_GIT_TIMEOUT_S = 20


@dataclass(frozen=True)
class TrainerOrigin:
    commits: tuple[str, ...]  # distinct git_commit values of the records, sorted
    without_commit: int  # records whose git_commit is null (made outside a git checkout)
    dirty: int  # records made from a work tree with uncommitted changes

    @property
    def mixed(self) -> bool:
        """More than one commit, or code that no commit pins down: not one trainer."""
        return len(self.commits) > 1 or self.dirty > 0 or (self.without_commit > 0 and bool(self.commits))


def trainer_origin(frame: pd.DataFrame) -> TrainerOrigin:
    """The commits and dirty flags of the records in `frame` (one row per record)."""
    commits = frame["git_commit"] if "git_commit" in frame else pd.Series([None] * len(frame), dtype=object)
    known = commits.dropna().astype(str)
    dirty = frame["git_dirty"].fillna(False).astype(bool).sum() if "git_dirty" in frame else 0
    return TrainerOrigin(tuple(sorted(known.unique())), int(len(commits) - len(known)), int(dirty))


def trainer_lines(frame: pd.DataFrame) -> list[str]:
    """The report's statement (markdown bullets) when the records do not come from one trainer; [] when they do."""
    origin = trainer_origin(frame)
    if not origin.mixed:
        return []
    parts = [f"{len(origin.commits)} commits"] if len(origin.commits) > 1 else [f"commit {origin.commits[0][:12]}"
                                                                               if origin.commits else "no commit"]
    parts += [f"{origin.dirty} of the runs with uncommitted changes"] if origin.dirty else []
    parts += [f"{origin.without_commit} runs outside any git checkout"] if origin.without_commit else []
    return [f"- not pinned to one trainer: the records were made from {'; '.join(parts)}, so a from-scratch run of "
            "this study with one trainer need not reproduce them"]


def checkout_notes(frame: pd.DataFrame, root: Path = ROOT) -> list[str]:
    """One line per record commit whose trainer code differs from the checkout at `root` (its work tree, so
    uncommitted edits count), or one line saying why that cannot be told; [] when every commit matches."""
    commits = trainer_origin(frame).commits
    if not commits:
        return []
    inside = _git(root, "rev-parse", "--is-inside-work-tree")
    if inside is None or inside.returncode != 0:
        why = "git is not available" if inside is None else f"{root} is not a git checkout"
        return [f"the records' trainer commits were not compared with this checkout's trainer: {why}"]
    unknown, failed, differ = [], [], []
    for commit in commits:
        known = _git(root, "cat-file", "-e", f"{commit}^{{commit}}")
        if known is None or known.returncode != 0:
            unknown.append(commit[:12])
            continue
        diff = _git(root, "diff", "--quiet", commit, "--", *TRAINER_PATHS)
        if diff is None or diff.returncode not in (0, 1):
            failed.append(commit[:12])
        elif diff.returncode == 1:
            differ.append(commit[:12])
    notes = [f"records from {_commits(differ)}: the trainer code (speedrun/) there differs from this checkout's, "
             "so this checkout need not reproduce them"] if differ else []
    notes += [f"records from {_commits(unknown)}: this repository does not hold it, so whether its trainer matches "
              "this checkout's cannot be told"] if unknown else []
    notes += [f"records from {_commits(failed)}: git could not compare its trainer with this checkout's"] if failed else []
    return notes


def _commits(short: list[str]) -> str:
    return f"commit {short[0]}" if len(short) == 1 else f"{len(short)} commits ({', '.join(short)})"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=_GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
