"""The scaling laws: ONE table (`LAWS`) of the forms the analysis can fit, each a model of error = 1 − ema_val_acc.

  separable   : e_inf + A·N^(−alpha) + B·E^(−beta)                       (Hoffmann et al. 2022's form)
  per_width   : c_w + a_w·E^(−beta), one floor and coefficient per width, one shared epochs exponent
  interaction : e_inf + ((N_c/N)^(alpha/beta) + E_c/E)^beta                 (Kaplan et al. 2020's L(N, D))
  saturating  : e_inf + A·N^(−alpha) + B·E'^(−beta), E' = 1 + R·(1 − exp(−(E − 1)/R))
                (effective epochs under repeated data, Muennighoff et al. 2023; R → ∞ gives separable)

N is `num_params`, E is `epochs`. Every law is fitted in centred coordinates u = log(N/N0), v = log(E/E0), with
N0, E0 the geometric centre of the fitted cells, and with each power term's coefficient stored as its value AT
that centre (`A0` = A·N0^(−alpha), in error units): a raw A of 1e46 is the same fit as an A0 of 0.05, but only
the second can be read, and only the second is not nearly collinear with its exponent. `raw_params` converts back.

Adding a law is one entry in `LAWS` plus its model function, which returns the predicted error at each point
and its Jacobian with respect to the internal parameters (checked against finite differences in the tests), and
its `raw` conversion. What the rest of the analysis does differently per law reads the Law's fields
(`uses_num_params`, `widths`, `term_of`, `closed_form_allocation`), never its name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Law", "LawSpec", "Points", "LAWS", "law_names", "build_law", "raw_params"]

# Parameter kinds; internal values are the display values except for "coef" and "scale", stored as logs.
FLOOR, COEF, EXPONENT, SCALE = "floor", "coef", "exponent", "scale"


@dataclass(frozen=True)
class Points:
    """Where a law is evaluated, in the fit's centred coordinates; one entry per point (grid cell)."""

    u: np.ndarray  # log(num_params / N0)
    v: np.ndarray  # log(epochs / E0)
    epochs: np.ndarray  # epochs, raw (the saturating law transforms them before centring)
    log_e0: float  # log E0
    group: np.ndarray  # index into Law.widths for a law without num_params (-1: a width it has no parameters for)


@dataclass(frozen=True)
class Law:
    """One fitted form: parameter names and kinds, and its model (theta, points) → (error, d error/d theta)."""

    name: str
    formula: str
    params: tuple[str, ...]
    kinds: tuple[str, ...]  # FLOOR, COEF, EXPONENT or SCALE per parameter
    model: Callable = field(repr=False, compare=False)
    # The law as written (A, not A0): (law, values, centre) → the raw coefficients and scales (raw_params).
    raw: Callable = field(repr=False, compare=False)
    # False: a curve per width (one floor and coefficient each), in epochs alone. Such a law needs two epochs
    # values at a width, has no N0 centre, and cannot predict a width it has no parameters for.
    uses_num_params: bool = True
    widths: tuple = ()  # the widths a law without num_params has parameters for; () for laws in N
    min_exponent: float = 0.0  # the interaction law divides by beta, so it keeps beta away from 0
    term_of: dict = field(default_factory=dict)  # exponent → the coefficient of its term (a vanished term's
    # exponent means nothing, so it is flagged with it)
    closed_form_allocation: bool = False  # the compute-optimal width grows as C^(beta/(alpha+beta)) (allocation)

    @property
    def n_params(self) -> int:
        return len(self.params)

    @property
    def exponents(self) -> tuple[str, ...]:
        return tuple(p for p, k in zip(self.params, self.kinds) if k == EXPONENT)

    def display(self, theta: np.ndarray) -> np.ndarray:
        """Internal parameters (..., params) → the values reported: coefficients and scales exponentiated."""
        out = np.array(theta, dtype=float, copy=True)
        for k, kind in enumerate(self.kinds):
            if kind in (COEF, SCALE):
                out[..., k] = np.exp(out[..., k])
        return out

    def floor_width(self, k: int):
        """The width a floor parameter belongs to (per-width law), or None for a law-wide floor."""
        return self.widths[k // 2] if not self.uses_num_params and self.kinds[k] == FLOOR else None

    def groups(self, widths) -> np.ndarray:
        """Points.group for points at `widths`: each one's index into `self.widths` (-1 where the law has no
        parameters for it, and everywhere for a law in num_params)."""
        widths = np.asarray(widths, dtype=float)
        if self.uses_num_params:
            return np.full(widths.shape, -1)
        lookup = {float(w): k for k, w in enumerate(self.widths)}
        return np.array([lookup.get(float(w), -1) for w in widths.ravel()], dtype=int).reshape(widths.shape)

    def predicts_width(self, width) -> bool:
        """Whether the law has a curve at `width`: any width for a law in num_params, else its own widths."""
        return self.uses_num_params or float(width) in {float(w) for w in self.widths}


@dataclass(frozen=True)
class LawSpec:
    """A registry entry: how to build the law for the widths present, and one line saying what it is."""

    name: str
    summary: str
    build: Callable[[tuple], Law] = field(repr=False)


# --- model functions: theta (internal) and Points → predicted error (n,) and its Jacobian (n, params)

def _power(log_coef, exponent, x):
    return np.exp(np.clip(log_coef - exponent * x, -700.0, 700.0))


def _separable_model(theta, p: Points):
    e_inf, la, alpha, lb, beta = theta
    t1, t2 = _power(la, alpha, p.u), _power(lb, beta, p.v)
    jac = np.column_stack([np.ones_like(t1), t1, -p.u * t1, t2, -p.v * t2])
    return e_inf + t1 + t2, jac


def _per_width_model(theta, p: Points):
    n_groups = (len(theta) - 1) // 2
    beta = theta[-1]
    floors, logs = theta[0:-1:2], theta[1:-1:2]
    g = np.where(p.group >= 0, p.group, 0)
    term = _power(logs[g], beta, p.v)
    pred = np.where(p.group >= 0, floors[g] + term, np.nan)
    jac = np.zeros((len(p.v), 2 * n_groups + 1))
    rows = np.arange(len(p.v))
    jac[rows, 2 * g] = 1.0
    jac[rows, 2 * g + 1] = term
    jac[:, -1] = -p.v * term
    return pred, jac


def _interaction_model(theta, p: Points):
    # e_inf + (A0^(1/beta)·exp(−alpha·u/beta) + B0^(1/beta)·exp(−v))^beta, written with q1 = lA − alpha·u and
    # q2 = lB − beta·v as G = exp(beta·logsumexp(q1/beta, q2/beta)); A0, B0 are each limit's value at the centre.
    e_inf, la, alpha, lb, beta = theta
    q1, q2 = la - alpha * p.u, lb - beta * p.v
    z1, z2 = q1 / beta, q2 / beta
    top = np.maximum(z1, z2)
    w1, w2 = np.exp(z1 - top), np.exp(z2 - top)
    log_s = top + np.log(w1 + w2)
    s1, s2 = w1 / (w1 + w2), w2 / (w1 + w2)
    g = np.exp(np.clip(beta * log_s, -700.0, 700.0))
    d_beta = log_s - (q1 * s1 + q2 * s2) / beta - p.v * s2
    jac = np.column_stack([np.ones_like(g), g * s1, -p.u * g * s1, g * s2, g * d_beta])
    return e_inf + g, jac


def _saturating_model(theta, p: Points):
    e_inf, la, alpha, lb, beta, log_r = theta
    r = np.exp(log_r)
    extra = np.maximum(p.epochs - 1.0, 0.0)
    decay = np.exp(-extra / r)
    effective = 1.0 + r * (1.0 - decay)
    d_eff_d_logr = r * (1.0 - decay) - extra * decay  # r · dE'/dr
    v_eff = np.log(effective) - p.log_e0
    t1, t2 = _power(la, alpha, p.u), _power(lb, beta, v_eff)
    jac = np.column_stack([np.ones_like(t1), t1, -p.u * t1, t2, -v_eff * t2, -beta * t2 * d_eff_d_logr / effective])
    return e_inf + t1 + t2, jac


# --- the law as written, from its centred parameters (A = A0·N0^alpha, B = B0·E0^beta, ...)

def _additive_raw(law: "Law", values: dict, centre: dict) -> dict:
    return {"A": values["A0"] * centre["num_params"] ** values["alpha"],
            "B": values["B0"] * centre["epochs"] ** values["beta"]}


def _per_width_raw(law: "Law", values: dict, centre: dict) -> dict:
    return {f"a[w={w:g}]": values[f"a0[w={w:g}]"] * centre["epochs"] ** values["beta"] for w in law.widths}


def _interaction_raw(law: "Law", values: dict, centre: dict) -> dict:
    n0, e0 = centre["num_params"], centre["epochs"]
    return {"N_c": n0 * values["A0"] ** (1.0 / values["alpha"]) if values["alpha"] > 0 else float("nan"),
            "E_c": e0 * values["B0"] ** (1.0 / values["beta"])}


# --- builders (the per-width law's parameters depend on the widths present)

def _separable(widths: tuple) -> Law:
    return Law("separable", "error = e_inf + A·N^(−alpha) + B·E^(−beta)",
               ("e_inf", "A0", "alpha", "B0", "beta"), (FLOOR, COEF, EXPONENT, COEF, EXPONENT), _separable_model,
               _additive_raw, term_of={"alpha": "A0", "beta": "B0"}, closed_form_allocation=True)


def _per_width(widths: tuple) -> Law:
    names, kinds = [], []
    for w in widths:
        names += [f"c[w={w:g}]", f"a0[w={w:g}]"]
        kinds += [FLOOR, COEF]
    return Law("per_width", "error = c_w + a_w·E^(−beta) per width w, beta shared", tuple(names) + ("beta",),
               tuple(kinds) + (EXPONENT,), _per_width_model, _per_width_raw, uses_num_params=False,
               widths=tuple(widths))


def _interaction(widths: tuple) -> Law:
    return Law("interaction", "error = e_inf + ((N_c/N)^(alpha/beta) + E_c/E)^beta",
               ("e_inf", "A0", "alpha", "B0", "beta"), (FLOOR, COEF, EXPONENT, COEF, EXPONENT), _interaction_model,
               _interaction_raw, min_exponent=0.05, term_of={"alpha": "A0", "beta": "B0"})


def _saturating(widths: tuple) -> Law:
    return Law("saturating", "error = e_inf + A·N^(−alpha) + B·E'^(−beta), E' = 1 + R·(1 − exp(−(E−1)/R))",
               ("e_inf", "A0", "alpha", "B0", "beta", "R"), (FLOOR, COEF, EXPONENT, COEF, EXPONENT, SCALE),
               _saturating_model, _additive_raw, term_of={"alpha": "A0", "beta": "B0"})


LAWS: dict[str, LawSpec] = {spec.name: spec for spec in (
    LawSpec("separable", "independent power laws in model size and epochs over a floor", _separable),
    LawSpec("per_width", "each width its own epochs curve, one epochs exponent shared (cannot predict new widths)",
            _per_width),
    LawSpec("interaction", "Kaplan-style: size and epochs limits combined, not added", _interaction),
    LawSpec("saturating", "separable, with repeated epochs worth less (effective epochs E')", _saturating),
)}


def law_names() -> tuple[str, ...]:
    return tuple(LAWS)


def build_law(name: str, widths) -> Law:
    """The law `name` for data holding `widths`; an unknown name raises KeyError listing the valid ones."""
    if name not in LAWS:
        raise KeyError(f"unknown law {name!r}; valid laws: {', '.join(LAWS)}")
    return LAWS[name].build(tuple(sorted(widths)))


def raw_params(law: Law, values: dict, centre: dict) -> dict:
    """The law as written (A, not A0): A = A0·N0^alpha, B = B0·E0^beta; the per-width a_w likewise in epochs.
    Returned for completeness (JSON); raw coefficients of 1e40 say nothing a reader can use."""
    return {**values, **law.raw(law, values, centre)}
