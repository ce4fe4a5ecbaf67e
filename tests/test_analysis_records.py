"""analysis.load: records → DataFrame; corrupt, failed, incompatible and duplicate records are counted."""
import json
import re
import warnings
from pathlib import Path

import pytest

from analysis import AnalysisError, NoRecordsError, RecordWarning, load
from analysis.testing import make_record, write_records


def _study(tmp_path, cells=((64, 10), (64, 20)), seeds=2):
    records = [make_record(width=w, epochs=e, seed=s, ema_val_acc=0.9 + 0.001 * s) for w, e in cells
               for s in range(seeds)]
    write_records(tmp_path, records)
    return records


def test_one_row_per_record_with_config_and_top_level_columns(tmp_path):
    records = _study(tmp_path)
    result = load(tmp_path)
    frame = result.frame
    assert len(frame) == len(records) == result.n_ok
    assert result.n_failed == 0 and result.n_skipped == 0
    for column in ("width", "epochs", "seed", "ema_val_acc", "train_flops", "num_params", "run_id", "history",
                   "versions.torch", "device", "precision", "config.device", "config.precision", "batch_size",
                   "threads", "config.threads"):
        assert column in frame.columns, column
    # top-level resolved values keep their names; the config's "auto" moves to config.*
    assert set(frame["device"]) == {"cuda"} and set(frame["config.device"]) == {"auto"}
    assert sorted(frame["width"].unique()) == [64]
    assert isinstance(frame["history"].iloc[0], list)
    assert "width" in result.config_columns and "config.precision" in result.config_columns


def test_corrupt_file_is_skipped_and_named(tmp_path):
    _study(tmp_path)
    bad = tmp_path / "runs" / "broken.json"
    bad.write_text('{"schema_version": 1, "status": "ok", ')
    with pytest.warns(RecordWarning, match="broken.json"):
        result = load(tmp_path)
    assert result.corrupt == [bad]
    assert result.n_ok == 4 and len(result.frame) == 4
    assert "1 corrupt" in result.summary()


def test_failed_runs_are_excluded_and_counted(tmp_path):
    _study(tmp_path)
    write_records(tmp_path, [make_record(width=128, epochs=80, seed=s, status="failed") for s in range(3)])
    result = load(tmp_path)
    assert result.n_failed == 3 and result.n_ok == 4
    assert set(result.frame["status"]) == {"ok"}
    assert all("out of memory" in error for _, error in result.failures)
    kept = load(tmp_path, include_failed=True)
    assert len(kept.frame) == 7 and (kept.frame["status"] == "failed").sum() == 3


def test_percent_accuracy_and_non_records_are_reported_not_loaded(tmp_path):
    _study(tmp_path)
    write_records(tmp_path, [make_record(width=32, epochs=5, ema_val_acc=95.7)])
    (tmp_path / "notes.json").write_text(json.dumps({"comment": "not a record"}))
    with pytest.warns(RecordWarning) as caught:
        result = load(tmp_path)
    reasons = " ".join(reason for _, reason in result.incompatible)
    assert len(result.incompatible) == 2
    assert "not a fraction" in reasons and "not a run record" in reasons
    assert any("95.7" in str(w.message) for w in caught)
    assert 32 not in set(result.frame["width"])


def test_other_schema_versions_load_with_a_warning(tmp_path):
    _study(tmp_path)
    write_records(tmp_path, [make_record(width=32, epochs=5, schema_version=2)])
    with pytest.warns(RecordWarning, match="schema_version"):
        result = load(tmp_path)
    assert result.n_ok == 5 and not result.incompatible
    assert result.schema_versions == {1: 4, 2: 1}


def test_a_layout_without_config_is_not_a_record(tmp_path):
    _study(tmp_path)
    older = make_record(width=32, epochs=10)
    del older["config"]  # knobs only at top level: a layout this project never wrote
    older.update(width=32, epochs=10, seed=0)
    write_records(tmp_path, [older])
    with pytest.warns(RecordWarning, match="`config` with `width` and `epochs` is missing"):
        result = load(tmp_path)
    assert result.n_ok == 4 and len(result.incompatible) == 1


def test_diverged_runs_are_counted_not_loaded(tmp_path):
    _study(tmp_path)
    write_records(tmp_path, [make_record(width=64, epochs=10, seed=7, status="diverged")])
    result = load(tmp_path)
    assert result.n_diverged == 1 and result.n_ok == 4 and result.n_failed == 0
    assert "training loss became nan" in result.divergences[0][1]
    assert set(result.frame["status"]) == {"ok"} and "1 diverged" in result.summary()
    assert (load(tmp_path, include_failed=True).frame["status"] == "diverged").sum() == 1


def test_a_folder_of_only_corrupt_records_says_so_in_one_line(tmp_path):
    for k in range(3):
        (tmp_path / f"bad{k}.json").write_text('{"status": "ok", ')
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.warns(RecordWarning), pytest.raises(NoRecordsError) as caught:
        load(tmp_path)
    message = str(caught.value)
    assert "no valid run records found" in message and "3 corrupt and 1 incompatible of 4" in message
    assert "\n" not in message


def test_flops_per_epoch_is_read_or_derived_in_one_place(tmp_path):
    new = make_record(width=64, epochs=10, seed=0)
    old = make_record(width=64, epochs=20, seed=0)
    del old["flops_per_epoch"]  # every record committed before the field existed
    write_records(tmp_path, [new, old])
    frame = load(tmp_path).frame.set_index("epochs")
    assert frame.loc[10, "flops_per_epoch"] == new["flops_per_epoch"]
    assert frame.loc[20, "flops_per_epoch"] == old["train_flops"] / 20 == new["flops_per_epoch"]


def test_record_facts_are_one_object_for_writer_and_reader():
    """The trainer writes records and analysis reads them with common.record's constants: the same objects, not
    copies that a test keeps equal."""
    import common.record
    import analysis.records
    import analysis.testing

    speedrun = pytest.importorskip("speedrun")
    import speedrun.record

    assert analysis.records.EXECUTION_FIELDS is speedrun.EXECUTION_FIELDS is common.record.EXECUTION_FIELDS
    assert analysis.testing.EXECUTION_FIELDS is common.record.EXECUTION_FIELDS
    assert analysis.records.SCHEMA_VERSION == speedrun.record.SCHEMA_VERSION == common.record.SCHEMA_VERSION
    assert analysis.records.STATUSES is speedrun.STATUSES is common.record.STATUSES


def test_duplicate_run_id_is_kept_once(tmp_path):
    records = _study(tmp_path)
    copy = tmp_path / "merged" / "runs"
    copy.mkdir(parents=True)
    (copy / "again.json").write_text(json.dumps(records[0]))
    with pytest.warns(RecordWarning, match="duplicate"):
        result = load(tmp_path)
    assert len(result.frame) == 4 and len(result.duplicates) == 1


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(AnalysisError, match="does not exist"):
        load(tmp_path / "nope")
    with pytest.raises(NoRecordsError, match="no run records"):
        load(tmp_path)


def test_clean_folder_gives_no_warnings(tmp_path):
    _study(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(tmp_path)


def test_synthetic_records_have_exactly_the_documented_fields():
    """analysis.testing.make_record follows results/README.md, so these tests exercise the real contract."""
    readme = (Path(__file__).resolve().parents[1] / "results" / "README.md").read_text(encoding="utf-8")
    documented = set()
    record_section = readme.split("## Fields", 1)[1].split("\n## ", 1)[0]  # not report.json's table further down
    for line in record_section.splitlines():
        if line.startswith("| `"):
            documented |= set(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    assert {"schema_version", "ema_val_acc", "config", "history", "versions"} <= documented
    # flops_per_epoch: added to the record by issue 12 (speedrun) and documented with it; a no-op once it is
    expected = documented | {"flops_per_epoch"}
    assert set(make_record()) == expected, set(make_record()) ^ expected


def test_a_record_written_by_speedrun_loads(tmp_path):
    pytest.importorskip("torch")
    record_module = pytest.importorskip("speedrun.record")
    from speedrun import TrainConfig

    record = record_module.failed_record(TrainConfig(width=8, epochs=2), "RuntimeError: boom")
    write_records(tmp_path, [record, make_record(width=8, epochs=2, seed=1)])
    result = load(tmp_path)
    assert result.n_failed == 1 and result.failures[0][1] == "RuntimeError: boom"
    assert result.n_ok == 1 and not result.incompatible
