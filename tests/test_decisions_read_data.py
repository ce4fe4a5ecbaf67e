"""Decisions read data, never prose or names: rewording a message, renaming a law or reordering a table must not
change what the code decides. Each test rewords or renames something and checks the decision stayed."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analysis import cell_table, fit_cells, load
from analysis.checks import CheckResult, Check
from analysis.errors import NotComputed
from analysis.fits import AT_BOUND, INTERVAL_AT_BOUND, LOWER, TERM_VANISHES, UPPER, Flag
from analysis.laws import LAWS, LawSpec, build_law, raw_params
from analysis.testing import grid_records, write_records
from common.states import FINAL_STATES, FINAL_STATUSES, RECORD_STATUSES, RUN_STATES, TODO_STATES, state_of_status

WIDTHS, EPOCHS = (32, 48, 64, 96, 128), (5, 10, 20, 40, 80)


@pytest.fixture(scope="module")
def flat_cells(tmp_path_factory):
    """Accuracy that depends on width only: the epochs term has nothing to fit (its coefficient sits at 0)."""
    folder = tmp_path_factory.mktemp("flat")
    write_records(folder, grid_records(lambda n, e: 0.04 + 60 * n**-0.5, widths=WIDTHS, epochs=EPOCHS, seeds=3,
                                       sd=0.0015, seed=5))
    return cell_table(load(folder).frame)


@pytest.mark.parametrize("name", ["separable", "per_width"])
def test_a_vanishing_term_flags_its_exponent_whatever_the_flags_say(name, monkeypatch):
    """Every coefficient at its lower bound (its term may be 0), every exponent well inside: the exponent is
    flagged for its term, and stays flagged when the flags' text no longer names a bound."""
    from analysis.fits import _flags

    law = build_law(name, (8, 16))
    lower, upper = np.full(law.n_params, -10.0), np.full(law.n_params, 10.0)
    theta = np.array([lower[k] if kind == "coef" else 0.5 for k, kind in enumerate(law.kinds)])
    problem = type("Bounds", (), {"lower": lower, "upper": upper})
    exponents = set(law.exponents)

    def decided():
        flags = _flags(law, theta, np.empty((0, law.n_params)), problem)
        return {p for p, f in flags.items() if f.cause == TERM_VANISHES}

    assert decided() == exponents
    monkeypatch.setattr(Flag, "__str__", lambda self: "reworded: no bound named here")
    assert decided() == exponents


def test_flags_decide_by_their_fields():
    assert Flag(AT_BOUND, LOWER, 0.0).reaches_lower and Flag(INTERVAL_AT_BOUND, LOWER, 0.0).reaches_lower
    assert not Flag(AT_BOUND, UPPER, 5.0).reaches_lower and not Flag(TERM_VANISHES, term="A0").reaches_lower
    # the text still reads as it always has (the committed reports quote it)
    assert str(Flag(INTERVAL_AT_BOUND, LOWER, 1e-8)) == "its interval reaches the lower bound 1e-08"
    assert str(Flag(TERM_VANISHES, term="B0")) == "its term (B0) can vanish"


def test_a_per_width_law_under_another_name_fits_and_refuses_alike(flat_cells, monkeypatch):
    """What the analysis does per law reads the Law's fields: the per-width law renamed behaves the same."""
    renamed = LawSpec("each_width", "the per-width law under another name",
                      lambda widths: dataclasses.replace(LAWS["per_width"].build(widths), name="each_width"))
    monkeypatch.setitem(LAWS, "each_width", renamed)
    original, copy = (fit_cells(flat_cells, name, n_boot=10) for name in ("per_width", "each_width"))
    assert copy.params == original.params and copy.not_identified == original.not_identified
    assert copy.centre == original.centre and not copy.law.predicts_width(256) and copy.law.predicts_width(64)
    assert raw_params(copy.law, copy.params, copy.centre) == raw_params(original.law, original.params,
                                                                        original.centre)


def test_only_laws_that_say_so_have_a_closed_form_allocation():
    from analysis.allocation import allocation_exponent

    laws = {name: build_law(name, (8, 16)) for name in LAWS}
    assert [n for n, law in laws.items() if law.closed_form_allocation] == ["separable"]
    assert [n for n, law in laws.items() if not law.uses_num_params] == ["per_width"]
    fake = type("Fit", (), {"law": dataclasses.replace(laws["interaction"], closed_form_allocation=False)})
    assert allocation_exponent(fake) is None


def test_a_not_computed_prediction_is_told_by_its_type_not_its_text():
    check = Check("c", None, 64, 10)
    result = CheckResult(check, None, None, np.nan, 0, np.nan, 0,
                         alternatives=(("a", NotComputed("anything at all")), ("b", NotComputed(""))))
    assert result.predictions() == {}
    assert str(NotComputed("why")) == "why"


def test_the_run_state_table_is_the_one_source_of_the_state_words():
    assert RECORD_STATUSES == ("ok", "diverged", "failed")  # results/README.md's order
    assert state_of_status("ok") == "done" and state_of_status("diverged") == "diverged"
    assert set(FINAL_STATUSES) == {"ok", "diverged"} and set(FINAL_STATES) == {"done", "diverged"}
    assert set(TODO_STATES) == {"failed", "corrupt", "pending"}
    assert not {s.name for s in RUN_STATES if s.final} & set(TODO_STATES)
    with pytest.raises(ValueError, match="'ok', 'diverged', 'failed'"):
        state_of_status("done")  # the scheduler's word is not a record status


def test_the_backend_default_comes_from_the_table(monkeypatch):
    from studies import backends
    from studies.backends import BACKENDS, Pool, default_backend

    assert default_backend(None) == "loky" and default_backend("tcp://host:8786") == "dask"
    cluster = type("Cluster", (Pool,), {"name": "cluster", "uses_address": True})
    monkeypatch.setattr(backends, "BACKENDS", {"cluster": cluster, **BACKENDS})
    assert default_backend("tcp://host:8786") == "cluster" and default_backend("") == "loky"
