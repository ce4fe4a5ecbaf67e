"""The law registry: each model against its formula written out directly, its Jacobian against finite
differences, and the fast Levenberg-Marquardt solver against scipy's least_squares."""
import numpy as np
import pytest
from scipy.optimize import least_squares

from analysis import LAWS, build_law, law_names
from analysis.laws import COEF, EXPONENT, FLOOR, SCALE, Points, raw_params
from analysis.optimize import _jacobian, _residuals, make_problem, solve

RNG = np.random.default_rng(0)


def _points(n=15, groups=3):
    return Points(u=RNG.normal(size=n), v=RNG.normal(size=n), epochs=RNG.uniform(2, 40, n), log_e0=np.log(9.0),
                  group=RNG.integers(0, groups, n))


def test_registry_is_one_table_with_the_four_required_forms():
    assert law_names() == ("separable", "per_width", "interaction", "saturating")
    assert all(spec.summary for spec in LAWS.values())
    with pytest.raises(KeyError, match="valid laws: separable, per_width"):
        build_law("chinchilla", ())
    for name in law_names():
        law = build_law(name, (8, 16, 32))
        assert law.name == name and len(law.params) == len(law.kinds)
        assert set(law.kinds) <= {FLOOR, COEF, EXPONENT, SCALE}
    assert build_law("per_width", (8, 16, 32)).params[-1] == "beta"
    assert len(build_law("per_width", (8, 16, 32)).params) == 7


@pytest.mark.parametrize("name", ["separable", "per_width", "interaction", "saturating"])
def test_jacobian_matches_finite_differences(name):
    law = build_law(name, (8, 16, 32))
    points = _points()
    theta = RNG.uniform(0.2, 1.0, law.n_params)
    _, jac = law.model(theta, points)
    numeric = np.empty_like(jac)
    for k in range(law.n_params):
        step = np.zeros_like(theta)
        step[k] = 1e-6
        numeric[:, k] = (law.model(theta + step, points)[0] - law.model(theta - step, points)[0]) / 2e-6
    np.testing.assert_allclose(jac, numeric, rtol=1e-5, atol=1e-8)


def test_models_equal_their_formulas_written_out():
    n, e = np.array([1e5, 4e5, 1.6e6]), np.array([3.0, 10.0, 20.0])
    n0, e0 = 4e5, 8.0
    points = Points(u=np.log(n / n0), v=np.log(e / e0), epochs=e, log_e0=np.log(e0), group=np.array([0, 1, 2]))
    e_inf, a0, alpha, b0, beta = 0.05, 0.1, 0.4, 0.2, 0.7
    A, B = a0 * n0**alpha, b0 * e0**beta  # raw coefficients
    separable = build_law("separable", ()).model(np.array([e_inf, np.log(a0), alpha, np.log(b0), beta]), points)[0]
    np.testing.assert_allclose(separable, e_inf + A * n**-alpha + B * e**-beta, rtol=1e-12)
    # Kaplan et al.'s L(N, D) = ((N_c/N)^(alpha/beta) + D_c/D)^beta, plus a floor
    n_c, e_c = n0 * a0 ** (1 / alpha), e0 * b0 ** (1 / beta)
    kaplan = build_law("interaction", ()).model(np.array([e_inf, np.log(a0), alpha, np.log(b0), beta]), points)[0]
    np.testing.assert_allclose(kaplan, e_inf + ((n_c / n) ** (alpha / beta) + e_c / e) ** beta, rtol=1e-12)
    raw = raw_params(build_law("interaction", ()), {"e_inf": e_inf, "A0": a0, "alpha": alpha, "B0": b0, "beta": beta},
                     {"num_params": n0, "epochs": e0})
    assert raw["N_c"] == pytest.approx(n_c) and raw["E_c"] == pytest.approx(e_c)
    # Muennighoff et al.'s effective epochs E' = 1 + R(1 − exp(−(E−1)/R)); R → ∞ gives the separable law
    r = 5.0
    effective = 1 + r * (1 - np.exp(-(e - 1) / r))
    sat = build_law("saturating", ()).model(np.array([e_inf, np.log(a0), alpha, np.log(b0), beta, np.log(r)]), points)[0]
    np.testing.assert_allclose(sat, e_inf + A * n**-alpha + B * effective**-beta, rtol=1e-12)
    unsaturated = build_law("saturating", ()).model(np.array([e_inf, np.log(a0), alpha, np.log(b0), beta, np.log(1e9)]),
                                                    points)[0]
    np.testing.assert_allclose(unsaturated, separable, rtol=1e-6)
    per_width = build_law("per_width", (8, 16, 32)).model(np.array([0.1, np.log(0.2), 0.2, np.log(0.3), 0.3,
                                                                     np.log(0.4), 0.9]), points)[0]
    np.testing.assert_allclose(per_width, [0.1, 0.2, 0.3] + np.array([0.2, 0.3, 0.4]) * (e / e0) ** -0.9)


@pytest.mark.parametrize("name", ["separable", "interaction", "saturating", "per_width"])
def test_levenberg_marquardt_reaches_scipy_least_squares_minimum(name):
    law = build_law(name, (8, 16, 32))
    points = Points(u=np.repeat(np.log([0.25, 1.0, 4.0]), 4), v=np.tile(np.log([0.4, 0.8, 1.6, 3.2]), 3),
                    epochs=np.tile([2.0, 4.0, 8.0, 16.0], 3), log_e0=np.log(5.0), group=np.repeat([0, 1, 2], 4))
    truth = {"separable": [0.05, np.log(0.1), 0.5, np.log(0.08), 0.8],
             "interaction": [0.05, np.log(0.1), 0.5, np.log(0.08), 0.8],
             "saturating": [0.05, np.log(0.1), 0.5, np.log(0.08), 0.8, np.log(6.0)],
             "per_width": [0.2, np.log(0.1), 0.15, np.log(0.1), 0.1, np.log(0.1), 0.8]}[name]
    y = np.log(law.model(np.array(truth), points)[0]) + RNG.normal(0, 0.02, 12)
    problem = make_problem(law, points, y, np.full(12, 0.02), 16.0,
                           np.array([np.exp(y).min()] * (3 if law.widths else 1)))
    theta, cost = solve(problem)
    best = min((least_squares(_residuals, s, jac=_jacobian, bounds=(problem.lower, problem.upper), args=(problem,),
                              method="trf", x_scale="jac") for s in problem.starts), key=lambda r: r.cost)
    assert cost <= 2 * best.cost * (1 + 1e-6) + 1e-9, (cost, 2 * best.cost)
    assert np.all(theta >= problem.lower) and np.all(theta <= problem.upper)
