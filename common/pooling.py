"""The seed-noise pooling rule: a cell's seed variance, measured on a few runs, moderated towards the pool of all
cells' (Smyth 2004): (own_dof · own + prior_dof · pooled) / (own_dof + prior_dof). Three runs give a variance on
2 degrees of freedom, below a quarter of the truth one time in nine; the pool lends each cell `prior_dof` more.

The prior's weight differs between the two uses, and both values live here:
- FIT_PRIOR_DOF (analysis: the weights of a law's least-squares fit and the degrees of freedom of the expected
  χ²). Every committed report was computed with it. It was not tuned against the scheduler's value, and setting
  it to 5 changes cpu-scaling's report (measured: the law's χ²/dof 2.99 -> 2.90, every interval and check z).
- SCHEDULER_PRIOR_DOF (studies' adaptive seeds: when a cell's standard error has met its target, so no more
  seeds go there). Chosen by simulation (results/benchmarks/adaptive-seeds/): with 5 the worst cell ended at
  1.1-1.5x the target SE, with none at up to 2.4x, with full pooling fewer cells met the target.
The two rules also differ in which cells they moderate (the fit: cells of 3 or more runs; the scheduler: of 2 or
more) and in their scale (the fit: always relative to the cell's error; the scheduler: its noise model). So a
cell's pooled SD may differ between `studies status --adaptive` and a report's fit weights; the report's cell
tables show each cell's own SD, which neither rule touches.
"""
from __future__ import annotations

__all__ = ["FIT_PRIOR_DOF", "SCHEDULER_PRIOR_DOF", "moderated_variance"]

FIT_PRIOR_DOF = 4.0
SCHEDULER_PRIOR_DOF = 5.0


def moderated_variance(own, own_dof, pooled, prior_dof: float):
    """A cell's variance pulled towards the pooled one; works on floats and on numpy arrays alike (the same
    operations in the same order, so either caller gets the same bits it always got)."""
    return (own_dof * own + prior_dof * pooled) / (own_dof + prior_dof)

