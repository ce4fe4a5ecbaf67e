"""How many runs would decide an undecided equivalence (analysis.tost_power): the simulated TOST power against the
normal approximation where that is good, against the project's one scalar TOST, and where no number of runs does."""
import numpy as np
import pytest
from scipy import stats

from analysis import compare
from analysis.tost_power import MAX_RUNS, POWER, runs_for_equivalence, runs_needed, tost_power
from common.welch import tost_p, welch

Z_ALPHA, Z_POWER, Z_HALF_MISS = stats.norm.ppf(0.95), stats.norm.ppf(POWER), stats.norm.ppf(0.5 + POWER / 2)


def comparison(sd_a, sd_b, difference=0.0, margin=0.002):
    """A Comparison of three runs a side whose samples have exactly these SDs and this difference of means."""
    unit = np.array([-1.0, 0.0, 1.0])  # SD 1
    return compare(difference + sd_a * unit, sd_b * unit, margin)


@pytest.mark.parametrize("offset, expected", [
    # offset 0: power ≈ 2Φ(m/se − z_α) − 1, so m/se = z_α + z_(1/2 + power/2), se = sd·√(2/n)
    (0.0, 2 * (0.005 * (Z_ALPHA + Z_HALF_MISS) / 0.002) ** 2),
    # offset half the margin: the far bound hardly matters, power ≈ Φ((m − δ)/se − z_α)
    (0.001, 2 * (0.005 * (Z_ALPHA + Z_POWER) / 0.001) ** 2),
])
def test_with_many_runs_the_count_is_the_normal_approximations(offset, expected):
    c = comparison(0.005, 0.005)
    n = runs_for_equivalence(c, offset, max_runs=400)
    assert expected * 0.95 <= n <= expected * 1.08  # t's heavier tails at ~200 df ask a little more


def test_the_vectorised_power_is_the_projects_scalar_tost():
    """The share of simulated pairs that common.welch's TOST calls equivalent, on fresh draws, matches."""
    n, sd, ref_sd, offset, margin = 6, 0.0014, 0.0008, 0.0005, 0.002
    rng = np.random.default_rng(12345)
    draws = 600
    hits = sum(tost_p(welch(offset + sd * rng.standard_normal(n), ref_sd * rng.standard_normal(n)), margin) < 0.05
               for _ in range(draws))
    simulated = tost_power(n, sd, n, ref_sd, offset, margin)
    se = np.sqrt(simulated * (1 - simulated) / draws)
    assert abs(hits / draws - simulated) < 4 * se + 0.01


def test_power_grows_with_runs_and_falls_as_the_offset_nears_the_margin():
    powers = [tost_power(n, 0.0014, n, 0.0007, 0.0005, 0.002) for n in (3, 6, 12, 24)]
    assert powers == sorted(powers) and powers[0] < 0.3 < 0.9 < powers[-1]
    c = comparison(0.0014, 0.0007)
    counts = [runs_for_equivalence(c, offset) for offset in (0.0, 0.0005, 0.001, 0.0015)]
    assert counts == sorted(counts) and counts[0] < counts[-1]


def test_where_no_number_of_runs_decides_it_says_so():
    c = comparison(0.0014, 0.0007, difference=0.0011)
    assert runs_for_equivalence(c, 0.002) is None and runs_for_equivalence(c, -0.0025) is None  # at/beyond margin
    # a reference fixed at three runs of SD 0.3 points: its own standard error alone fills the margin
    fixed = comparison(0.0014, 0.003, difference=0.0011)
    assert runs_for_equivalence(fixed, 0.0011, reference_fixed=True) is None
    needed = runs_needed(fixed, reference_fixed=True)
    assert needed.counts()[0] == f"more than {MAX_RUNS}"
    assert needed.text().startswith("runs of ours against the reference as it is to show equivalence with 80% power")
    with pytest.raises(ValueError, match="needs a Comparison with an equivalence margin"):
        runs_for_equivalence(compare([0.9, 0.91], [0.9, 0.91]), 0.0)


def test_only_an_undecided_comparison_gets_a_count():
    assert runs_needed(comparison(0.0014, 0.0007, difference=0.0011)).as_seen > 3
    assert runs_needed(comparison(0.0002, 0.0002)) is None  # equivalent already
    assert runs_needed(comparison(0.0002, 0.0002, difference=0.01)) is None  # different
    seen = runs_needed(comparison(0.0014, 0.0007, difference=0.0025, margin=0.004))
    assert seen is not None and seen.counts()[0].startswith("about")
    beyond = runs_needed(comparison(0.003, 0.003, difference=0.0025))
    assert beyond.as_seen is None and beyond.counts()[0] == "none would do" and beyond.at_zero is not None
    assert "none would do if the true difference is the +0.25 points seen, about" in beyond.text()


def test_no_spread_is_decided_by_the_offset_alone():
    assert tost_power(3, 0.0, 3, 0.0, 0.001, 0.002) == 1.0 and tost_power(3, 0.0, 3, 0.0, 0.003, 0.002) == 0.0
    with pytest.raises(ValueError, match="2 or more values a side"):
        tost_power(1, 0.001, 3, 0.001, 0.0, 0.002)
