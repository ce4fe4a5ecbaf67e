"""Which trainer made a study's records: the report's statement (from the records alone) and the checkout note
(`analysis report` runs git; it must say so plainly where git cannot tell)."""
from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest

from analysis.provenance import checkout_notes, trainer_lines


def _frame(*rows):
    return pd.DataFrame([{"git_commit": c, "git_dirty": d} for c, d in rows])


def test_one_clean_commit_says_nothing_and_several_say_so():
    assert trainer_lines(_frame(("a" * 40, False), ("a" * 40, False))) == []
    two = trainer_lines(_frame(("a" * 40, False), ("b" * 40, False)))
    assert len(two) == 1 and "2 commits" in two[0] and "need not reproduce" in two[0]
    dirty = trainer_lines(_frame(("a" * 40, True), ("a" * 40, False)))
    assert len(dirty) == 1 and "1 of the runs with uncommitted changes" in dirty[0]
    assert trainer_lines(_frame((None, None))) == []  # nothing to tell them apart by
    assert trainer_lines(pd.DataFrame({"run_id": ["x"]})) == []  # records older than the provenance fields


def test_outside_a_git_checkout_the_note_says_it_cannot_tell(tmp_path):
    notes = checkout_notes(_frame(("a" * 40, False)), root=tmp_path)
    assert len(notes) == 1 and "not compared" in notes[0]
    assert checkout_notes(_frame((None, None)), root=tmp_path) == []


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_a_commit_whose_trainer_differs_from_the_checkout_is_named(tmp_path):
    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "speedrun").mkdir()
    (tmp_path / "speedrun" / "train.py").write_text("lr = 1\n")
    (tmp_path / "README.md").write_text("a\n")
    git("add", "-A")
    git("commit", "-qm", "one")
    first = git("rev-parse", "HEAD")
    assert checkout_notes(_frame((first, False)), root=tmp_path) == []
    (tmp_path / "README.md").write_text("b\n")  # not trainer code
    assert checkout_notes(_frame((first, False)), root=tmp_path) == []
    (tmp_path / "speedrun" / "train.py").write_text("lr = 2\n")  # uncommitted trainer edits count
    notes = checkout_notes(_frame((first, False)), root=tmp_path)
    assert len(notes) == 1 and first[:12] in notes[0] and "differs" in notes[0]
    unknown = checkout_notes(_frame(("0" * 40, False)), root=tmp_path)
    assert len(unknown) == 1 and "does not hold" in unknown[0]
