"""The scaling laws: error = constant + Σ coef·x^(−exponent), one power term per variable.

  epochs  : error = c + a·epochs^(−b)                                        (one width)
  joint   : error = e_inf + A·N^(−alpha) + B·epochs^(−beta)                  (N = num_params or width)
  compute : error = e_inf + A·train_flops^(−alpha)

with error = 1 − ema_val_acc. Following Hoffmann et al. (2022) every law is evaluated in log space as
log error = logsumexp(log constant, log coef − exponent·log x, ...), which keeps each term positive and the
fit well conditioned across the many decades that FLOPs and parameter counts span.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

__all__ = ["Law", "PowerTerm", "epochs_law", "joint_law", "compute_law", "log_error", "LAWS"]


@dataclass(frozen=True)
class PowerTerm:
    coef: str  # parameter name of the coefficient, e.g. "A"
    exponent: str  # parameter name of the exponent, e.g. "alpha"
    variable: str  # record column the term decays in, e.g. "num_params"


@dataclass(frozen=True)
class Law:
    name: str  # "epochs", "joint" or "compute"
    constant: str  # parameter name of the irreducible error, e.g. "e_inf"
    terms: tuple[PowerTerm, ...]

    @property
    def params(self) -> tuple[str, ...]:
        """Parameter names in the order used by every parameter vector: constant, then coef, exponent per term."""
        names = [self.constant]
        for term in self.terms:
            names += [term.coef, term.exponent]
        return tuple(names)

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(term.variable for term in self.terms)

    @property
    def formula(self) -> str:
        parts = [self.constant] + [f"{t.coef}·{t.variable}^(−{t.exponent})" for t in self.terms]
        return "error = " + " + ".join(parts)


def epochs_law() -> Law:
    return Law("epochs", "c", (PowerTerm("a", "b", "epochs"),))


def joint_law(size: str = "num_params") -> Law:
    if size not in ("num_params", "width"):
        raise ValueError(f"size={size!r}: the joint law's model size is 'num_params' or 'width'")
    return Law("joint", "e_inf", (PowerTerm("A", "alpha", size), PowerTerm("B", "beta", "epochs")))


def compute_law() -> Law:
    return Law("compute", "e_inf", (PowerTerm("A", "alpha", "train_flops"),))


LAWS = ("epochs", "joint", "compute")


def log_error(law: Law, params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """log error predicted by `law` with raw parameters `params` (shape (k,) or (draws, k), in `law.params`
    order) at points `x` (shape (n, len(law.terms)), one column per term's variable). Returns (n,) or
    (draws, n)."""
    single = np.ndim(params) == 1
    params = np.atleast_2d(np.asarray(params, dtype=float))
    x = np.asarray(x, dtype=float).reshape(-1, len(law.terms))
    logx = np.log(x)
    with np.errstate(divide="ignore"):  # a coefficient of exactly 0 is a term of exactly 0
        pieces = [np.broadcast_to(np.log(params[:, :1]), (len(params), len(x)))]
        for k in range(len(law.terms)):
            coef, exponent = params[:, 1 + 2 * k, None], params[:, 2 + 2 * k, None]
            pieces.append(np.log(coef) - exponent * logx[None, :, k])
    out = logsumexp(np.stack(pieces), axis=0)
    return out[0] if single else out
