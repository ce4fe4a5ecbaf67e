"""checks.toml's [[equivalence]] entries: one cell in two folders, decided from the records by Welch and TOST, and
what the report says of a check whose only runs are in another precision."""
import json

import pytest

from analysis import AnalysisError, analyse, compare
from analysis.equivalence import read_equivalences, run_equivalence
from analysis.report import render
from analysis.report.report_json import report_dict
from analysis.testing import grid_records, make_record, num_params_of, write_records
from analysis.tost_power import runs_needed

def toml_table(kind, **fields):
    return f"\n[[{kind}]]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in fields.items())


CHECK = toml_table("check", name="width 64 x 10 in bf16", records="../wide", width=64, epochs=10)
ENTRY = toml_table("equivalence", name="bf16 against fp32 at 16 x 10", records="../bf16", against="../study",
                   width=16, epochs=10)


def true_error(n, e):
    return 0.04 + 60 * n**-0.5 + 0.3 * e**-0.8


def runs(width, values, precision):
    return [make_record(width=width, epochs=10, seed=s, ema_val_acc=v, study=None, precision=precision,
                        config={"precision": precision}) for s, v in enumerate(values)]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("equivalence")
    write_records(root / "study", grid_records(true_error, widths=(8, 16, 24, 32), epochs=(3, 5, 10, 20), seeds=3,
                                               sd=0.002, seed=1, study="grid", config={"precision": "fp32"},
                                               precision="fp32"))
    write_records(root / "wide", runs(64, [1 - true_error(num_params_of(64), 10)], "bf16"))
    return root


def fp32_16x10(root):
    from analysis import load
    frame = load(root / "study").frame
    return frame[(frame["width"] == 16) & (frame["epochs"] == 10)]["ema_val_acc"].tolist()


def report_text(root, toml, margin=0.002):
    (root / "study" / "checks.toml").write_text(toml)
    analysis = analyse(root / "study", n_boot=20, margin=margin)
    return analysis, render(analysis)


def test_an_entry_is_welch_and_tost_on_exactly_its_cells_runs(root, tmp_path):
    fp32 = fp32_16x10(root)
    shifted = [v + 0.01 for v in fp32]  # bf16 a point above, with fp32's own spread: different
    write_records(tmp_path / "bf16", runs(16, shifted, "bf16") + runs(8, [0.5, 0.6], "bf16"))
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "checks.toml").write_text(ENTRY.replace("../study", str(root / "study")))
    [entry] = read_equivalences(tmp_path / "here")
    assert entry.records == tmp_path / "bf16" and entry.width == 16 and entry.precision is None
    result = run_equivalence(entry, margin=0.002)
    expected = compare(shifted, fp32, margin=0.002)
    assert result.comparison == expected and result.precisions == ("bf16", "fp32")
    assert result.outcome == expected.outcome == "different" and result.compares("fp32", "bf16")
    assert not result.compares("bf16", "fp16")


def test_an_entry_without_its_runs_says_why_and_a_mixed_folder_needs_a_precision(root, tmp_path):
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "checks.toml").write_text(ENTRY.replace("../study", str(root / "study")))
    [entry] = read_equivalences(tmp_path / "here")
    missing = run_equivalence(entry)
    assert missing.comparison is None and missing.outcome == "not computed"
    assert "no records yet: the folder" in missing.reason and "bf16 does not exist" in missing.reason
    fp32 = fp32_16x10(root)
    write_records(tmp_path / "bf16", runs(16, fp32[:1], "bf16"))
    one = run_equivalence(entry)
    assert one.outcome == "not computed" and "bf16: 1 ok run at width=16, epochs=10; Welch's test needs 2" in one.reason
    write_records(tmp_path / "bf16", runs(16, [v + 0.001 for v in fp32], "bf16") + runs(16, [0.95], "fp32")[:1])
    mixed = run_equivalence(entry)
    assert mixed.outcome == "not computed" and "ran in more than one precision (bf16 ×3, fp32 ×1)" in mixed.reason
    (tmp_path / "here" / "checks.toml").write_text(ENTRY.replace("../study", str(root / "study"))
                                                   + 'precision = "bf16"\nagainst_precision = "fp32"\n')
    picked = run_equivalence(read_equivalences(tmp_path / "here")[0])
    assert picked.comparison.n == 3 and picked.precisions == ("bf16", "fp32")


@pytest.mark.parametrize("text, message", [
    (ENTRY.replace('against = "../study"\n', ""), "equivalence 1: `against` is missing"),
    (ENTRY + "seed = 1\n", "equivalence 1: unknown key 'seed' (valid: name, records, against, width, epochs, "
                           "precision, against_precision, against_fixed)"),
    (ENTRY + 'against_fixed = "yes"\n', "`against_fixed` = 'yes' should be true or false"),
    (ENTRY + "precision = 16\n", "`precision` = 16 should be a string"),
    (ENTRY.replace('"../study"', '"checks.toml"'), "equivalence 1: against 'checks.toml' ("),
    ("[equivalence]\nname = 'x'\n", "`equivalence` must be an array of tables: write each one as [[equivalence]]"),
    ("[[compare]]\nname = 'x'\n", "unknown top-level key 'compare' (only [[check]] and [[equivalence]] tables)"),
])
def test_a_bad_entry_is_one_clear_line(tmp_path, text, message):
    (tmp_path / "checks.toml").write_text(text)
    with pytest.raises(AnalysisError, match="checks.toml: ") as caught:
        read_equivalences(tmp_path)
    assert message in str(caught.value)


def test_the_report_says_whether_a_bf16_check_stands_in_for_the_fp32_law(root):
    fp32 = fp32_16x10(root)
    bf16 = root / "bf16"
    # no entry: the check's z is a bf16 result
    _, text = report_text(root, CHECK)
    assert ('- Whether the bf16 runs of "width 64 x 10 in bf16" test the fp32 law: no [[equivalence]] entry in '
            "checks.toml compares bf16 with fp32, so their z is a bf16 result") in text
    assert "## Equivalence" not in text
    # a bad entry is said once, in its own place; the checks still run
    analysis, text = report_text(root, CHECK + ENTRY + "seed = 1\n")
    assert analysis.checks and not analysis.checks_error and "unknown key 'seed'" in analysis.equivalences_error
    assert "- **Equivalence**: checks.toml's [[equivalence]] tables could not be used:" in text
    assert "## Equivalence (checks.toml)\n\nNot run: " in text and "### width 64 x 10 in bf16" in text
    # an entry whose runs have not landed: its row says why, with no numbers
    _, text = report_text(root, CHECK + ENTRY)
    assert "| 16 × 10 | bf16 | study | — | — | — | not computed: no records yet: the folder" in text.replace(str(root) + "/", "")
    # an entry that finds them different
    write_records(bf16, runs(16, [v + 0.01 for v in fp32], "bf16"))
    analysis, text = report_text(root, CHECK + ENTRY)
    [result] = analysis.equivalences
    c = result.comparison
    assert result.outcome == "different"
    assert (f"- **Equivalence** (checks.toml; Welch and TOST at ±0.2 points):\n  - bf16 against fp32 at 16 x 10: "
            f"bf16 − fp32 {100 * c.difference:+.2f} points") in text
    assert "not equivalent: the difference is significant" in text
    assert "bf16 against fp32 is different at 16 × 10, so bf16 is not shown to stand in for fp32" in text
    section = text[text.index("## Equivalence (checks.toml)"):]
    assert f"{100 * c.difference:+.2f} [{100 * c.ci_low:+.2f}, {100 * c.ci_high:+.2f}]" in section
    assert "| different |" in section
    data = json.loads(json.dumps(report_dict(analysis)))
    [entry] = data["equivalences"]
    assert entry["outcome"] == "different" and entry["precisions"] == ["bf16", "fp32"] and entry["n"] == 3
    assert entry["difference"] == pytest.approx(c.difference) and entry["tost_p"] == pytest.approx(c.tost_p)
    assert entry["runs_needed"] is None and result.runs is None  # decided: no runs to plan
    # a tenth of a point apart with a fifth of a point's spread: undecided, and how many runs a side would decide it
    write_records(bf16, runs(16, [v + 0.001 for v in fp32], "bf16"))
    analysis, text = report_text(root, CHECK + ENTRY)
    [result] = analysis.equivalences
    assert result.outcome == "undecided" and result.runs == runs_needed(result.comparison)
    seen, zero = result.runs.as_seen, result.runs.at_zero
    assert 3 < zero < seen <= 200
    assert (f"more runs needed: runs a side to show equivalence with 80% power: about {seen} if the true difference "
            f"is the {100 * result.comparison.difference:+.2f} points seen, about {zero} if it is 0") in text
    assert f"| undecided | a side: about {seen} / about {zero} |" in text[text.index("## Equivalence (checks.toml)"):]
    [entry] = json.loads(json.dumps(report_dict(analysis)))["equivalences"]
    assert entry["runs_needed"] == {"power": 0.8, "as_seen": seen, "at_zero": zero, "design": "a side"}
    # fp32's runs fixed as they are (another machine's): only more bf16 runs count, and more of them are needed
    analysis, text = report_text(root, CHECK + ENTRY + "against_fixed = true\n")
    [result] = analysis.equivalences
    assert result.entry.against_fixed and result.runs == runs_needed(result.comparison, reference_fixed=True)
    alone = result.runs.at_zero
    assert alone is None or alone > zero
    assert "more runs needed: runs of bf16 against study as it is to show equivalence with 80% power: " in text
    assert "| undecided | records only: " in text
    [entry] = json.loads(json.dumps(report_dict(analysis)))["equivalences"]
    assert entry["runs_needed"]["design"] == "records only" and entry["runs_needed"]["at_zero"] == alone
    # bf16 as fp32's twin, at a margin three runs a side can show: equivalent, so the check's runs stand in
    write_records(bf16, runs(16, fp32, "bf16"))
    analysis, text = report_text(root, CHECK + ENTRY, margin=0.01)
    assert analysis.equivalences[0].outcome == "equivalent"
    assert "bf16 against fp32 is equivalent at 16 × 10, so they stand in for fp32 there, within the margin" in text
