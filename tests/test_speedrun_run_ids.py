"""run_id stability: every committed record keeps its id under today's TrainConfig, and fields added since
stay out of the identity while they hold the value that reproduces the old behaviour."""
import json

import pytest

from speedrun import TrainConfig, run_id
from speedrun.config import IDENTITY_DEFAULTS
from tests.conftest import ROOT


def committed_records():
    for path in sorted((ROOT / "results").rglob("*.json")):
        record = json.loads(path.read_text())
        if isinstance(record, dict) and "run_id" in record and "config" in record:
            yield path.relative_to(ROOT), record


def test_there_are_committed_records():
    assert len(list(committed_records())) >= 20, "results/ should hold the committed study and headline records"


@pytest.mark.parametrize("path, record", list(committed_records()),
                         ids=lambda v: "" if isinstance(v, dict) else str(v))
def test_committed_record_keeps_its_run_id(path, record):
    assert run_id(TrainConfig.from_dict(record["config"])) == record["run_id"], path


def test_new_fields_enter_the_identity_only_away_from_the_old_behaviour():
    base = TrainConfig(width=8, epochs=3)
    old_fields = {k: v for k, v in base.to_dict().items() if k not in IDENTITY_DEFAULTS}
    for name, old_value in IDENTITY_DEFAULTS.items():
        assert getattr(base, name) == old_value, f"{name}: the default must be the value that keeps old run_ids"
        assert run_id(TrainConfig.from_dict(old_fields)) == run_id(base)
    assert run_id(base.replace(whiten_method="chunk_average")) != run_id(base)


@pytest.mark.parametrize("fixed", [dict(width=8, epochs=3), dict(width=16, whiten_method="chunk_average"),
                                   dict(precision="bf16", lr=0.5, device="cpu", threads=2)])
def test_a_seed_copy_and_its_id_equal_a_full_construction(fixed):
    """with_seed and run_id_by_seed (how a grid's seeds are built) agree with building each config in full."""
    import pickle

    from speedrun import run_id_by_seed

    config = TrainConfig(**fixed)
    ids = run_id_by_seed(config)
    for seed in (0, 1, 7, 123_456):
        full = config.replace(seed=seed)
        copy = config.with_seed(seed)
        assert copy == full and hash(copy) == hash(full) and copy.to_dict() == full.to_dict()
        assert ids(seed) == run_id(copy) == run_id(full)
        assert pickle.loads(pickle.dumps(copy)) == full


@pytest.mark.parametrize("seed", [-1, True, 1.5, "3", None])
def test_a_bad_seed_is_refused_the_same_way_everywhere(seed):
    from speedrun import ConfigError, run_id_by_seed

    config = TrainConfig(width=8)
    messages = set()
    for attempt in (lambda: config.replace(seed=seed), lambda: config.with_seed(seed),
                    lambda: run_id_by_seed(config)(seed)):
        with pytest.raises(ConfigError) as info:
            attempt()
        messages.add((str(info.value), info.value.field))
    assert len(messages) == 1, messages
