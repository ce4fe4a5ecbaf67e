"""The one atomic writer, strict JSON, and the one per-epoch table (speedrun's, which studies' logs reuse)."""
import errno
import json
import math
import os

import pytest

from speedrun import EPOCH_COLUMNS, atomic_write_text, epoch_header, epoch_line, json_text, strict_json, write_json


def strict_load(text: str):
    """json.loads that rejects NaN/Infinity tokens, as strict JSON readers (JavaScript, jq, Go) do."""
    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=reject)


def test_strict_json_nulls_every_non_finite_number():
    value = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": (2, 0.5), "e": "nan", "f": None}
    clean = strict_json(value)
    assert clean == {"a": None, "b": [1.0, None, {"c": None}], "d": [2, 0.5], "e": "nan", "f": None}
    assert strict_load(json_text(clean)) == clean
    assert value["a"] is not None and math.isnan(value["a"]), "the input is not modified"


def test_writer_refuses_nan_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "sub" / "r.json"
    write_json(path, {"x": 1})
    with pytest.raises(ValueError, match="non-strict JSON.*strict_json"):
        write_json(path, {"x": math.nan})
    assert strict_load(path.read_text()) == {"x": 1}
    assert os.listdir(path.parent) == ["r.json"], "no temp files left behind"


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    """A full disk at the rename (or anywhere in the write): the old file stays whole, the temp file goes."""
    path = tmp_path / "r.json"
    path.write_text("old\n")

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(path, "new\n")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["r.json"]


def test_caller_names_the_temp_file(tmp_path):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", spy)
        atomic_write_text(tmp_path / "a.txt", "x", temp=tmp_path / ".a.txt.mine")
    assert seen == [".a.txt.mine"] and (tmp_path / "a.txt").read_text() == "x"


def test_epoch_table_looks_like_the_reference():
    header = epoch_header()
    assert [c.strip() for c in header.split("|")] == list(EPOCH_COLUMNS)
    row = dict(epoch=3, train_loss=1.23456, train_acc=0.5, val_loss=None, val_acc=None, ema_val_acc=None,
               train_time_s=12.5)
    cells = [c.strip() for c in epoch_line(row).split("|")]
    assert cells == ["3", "1.2346", "", "0.5000", "", "", "12.5000"]
    assert "nan" in epoch_line({**row, "train_loss": math.nan}), "a diverged epoch shows its NaN"


def test_study_logs_hold_the_same_table(tmp_path):
    from speedrun import TrainConfig
    from studies.logfile import RunLog

    row = dict(epoch=1, train_loss=2.0, train_acc=0.1, val_loss=2.1, val_acc=0.2, ema_val_acc=None, train_time_s=1.0)
    with RunLog(tmp_path / "x.log") as log:
        log.attempt(1, 1, TrainConfig())
        log.epoch(row)
    lines = (tmp_path / "x.log").read_text().splitlines()
    assert lines[1:] == [epoch_header(), epoch_line(row)]
