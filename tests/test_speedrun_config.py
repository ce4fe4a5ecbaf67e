"""TrainConfig validation, run_id identity, and the data checks' error messages."""
import json
import pickle
import shutil
from pathlib import Path

import pytest

from speedrun import ConfigError, DataError, TrainConfig, model_stats, run_id, train_flops
from speedrun.data import FILES, resolve_data_dir, verify
from tests.conftest import ROOT


@pytest.mark.parametrize("field, value, allowed", [
    ("width", 0, ">= 1"), ("epochs", 0, ">= 1"), ("device", "tpu", "cuda:N"), ("precision", "fp8", "bf16"),
    ("train_subset", 100, "batch_size"), ("test_subset", 20_000, "1..10000"), ("seed", -1, ">= 0"),
    ("data", "imagenet", "synthetic"), ("flip_p", 2.0, "[0, 1]"), ("width", 2.5, "integer"),
    ("whiten_method", "zca", "chunk_average"),
])
def test_invalid_values_name_field_and_range(field, value, allowed):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{field: value})
    message = str(err.value)
    assert f"TrainConfig.{field}=" in message and allowed in message and "\n" not in message
    assert err.value.field == field, "the field is structure, not only text"
    again = pickle.loads(pickle.dumps(err.value))  # as it crosses from a worker process
    assert again.field == field and str(again) == message


def test_field_of_errors_outside_validation():
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({"depth": 3})
    assert err.value.field == "depth"
    with pytest.raises(ConfigError) as err:
        TrainConfig(batch_size=60_000).derived()
    assert err.value.field == "batch_size"


def test_study_file_points_at_the_field_from_structure(tmp_path):
    """The study-file checker places an error by ConfigError.field: a message without `TrainConfig.<field>=`
    (the one a regex used to look for) still lands on the right key."""
    from studies import StudyError, load_study

    path = tmp_path / "s.toml"
    path.write_text('name = "s"\ndescription = "d"\n[grid]\nseed = [0]\n[fixed]\nbatch_size = 60000\n')
    with pytest.raises(StudyError) as err:
        load_study(path)
    assert "fixed.batch_size: batch_size=60000 exceeds the 50000 training images" in str(err.value)


def test_unknown_field_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown TrainConfig field.*'depth'.*valid fields: width, epochs"):
        TrainConfig.from_dict({"depth": 3})


def test_run_id_identity():
    base = TrainConfig(width=64, epochs=10, seed=1)
    assert run_id(base) == run_id(TrainConfig(width=64, epochs=10, seed=1))
    assert len(run_id(base)) == 12
    # execution-only fields leave the identity alone ...
    assert run_id(base) == run_id(base.replace(device="cuda:3", data_dir="/x", compile=True, threads=4))
    # ... anything that can change the result changes it
    for change in (dict(seed=2), dict(width=65), dict(epochs=11), dict(precision="bf16"), dict(train_subset=1000)):
        assert run_id(base.replace(**change)) != run_id(base), change


def test_missing_data_dir_is_one_clear_line(tmp_path):
    with pytest.raises(DataError) as err:
        resolve_data_dir(str(tmp_path / "nowhere"))
    message = str(err.value)
    assert "nowhere" in message and "--data-dir" in message and "\n" not in message


def _fake_folder(tmp_path: Path, cifar_dir: str) -> Path:
    """A copy of the real folder made of links, so single files can be damaged cheaply."""
    real = resolve_data_dir(cifar_dir)
    fake = tmp_path / "cifar-10-batches-py"
    fake.mkdir()
    for name in FILES:
        (fake / name).symlink_to(real / name)
    return fake


def test_truncated_and_corrupt_files_are_named(tmp_path, cifar_dir):
    fake = _fake_folder(tmp_path, cifar_dir)
    verify(fake, md5=False)
    (fake / "data_batch_3").unlink()
    (fake / "data_batch_3").write_bytes(b"x" * 1000)
    with pytest.raises(DataError, match="data_batch_3 has 1000 bytes, expected 31035999"):
        verify(fake, md5=False)
    shutil.copy(resolve_data_dir(cifar_dir) / "data_batch_3", fake / "data_batch_3")
    meta = (resolve_data_dir(cifar_dir) / "batches.meta").read_bytes()
    (fake / "batches.meta").unlink()
    (fake / "batches.meta").write_bytes(meta[:-1] + bytes([meta[-1] ^ 1]))  # same size, one bit flipped
    with pytest.raises(DataError, match="batches.meta md5"):
        verify(fake)
    (fake / "batches.meta").unlink()
    (fake / "batches.meta").write_bytes(meta)
    (fake / "test_batch").unlink()
    with pytest.raises(DataError, match="missing.*test_batch"):
        verify(fake)


def test_data_dir_accepts_parent_or_folder(cifar_dir):
    folder = resolve_data_dir(cifar_dir)
    assert folder.name == "cifar-10-batches-py"
    assert resolve_data_dir(str(folder)) == folder


def committed_records():
    """Every run record committed under results/ (anything with a run_id and a config)."""
    for path in sorted((ROOT / "results").rglob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(record, dict) and "run_id" in record and "config" in record:
            yield path, record


def test_committed_records_keep_their_run_id_and_model_facts():
    """A change to TrainConfig or the hash must not orphan committed results: each record's config still hashes
    to its run_id, and the network still reports the size and FLOPs the record holds."""
    records = list(committed_records())
    assert records, "results/ holds committed records"
    for path, record in records:
        config = TrainConfig.from_dict(record["config"])
        where = path.relative_to(ROOT)
        assert run_id(config) == record["run_id"], f"{where}: config no longer hashes to its run_id"
        if path.parent.name == "runs":
            assert path.stem == record["run_id"], f"{where}: file name and run_id differ"
        stats = model_stats(config)
        assert {k: record[k] for k in stats} == stats, f"{where}: model facts changed"
        if record["status"] == "ok":
            assert record["train_flops"] == train_flops(config, record["steps"] * config.batch_size), where
