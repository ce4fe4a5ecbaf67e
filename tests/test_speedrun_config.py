"""TrainConfig validation, run_id identity, and the data checks' error messages."""
import shutil
from pathlib import Path

import pytest

from speedrun import ConfigError, DataError, TrainConfig, run_id
from speedrun.data import FILES, resolve_data_dir, verify


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
