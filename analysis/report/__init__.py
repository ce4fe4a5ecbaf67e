"""analysis.report: the study report, `report(study_dir)` → `<study_dir>/report.md` and `figures/*.png`.

build.py assembles the report in its order and writes it; summary.py writes its opening (what the data say,
with n and intervals); sections.py the sections after it (runs, cells, laws, checks, allocation, comparison,
provenance); markdown.py the markdown tables and number formats (the CLI uses them too); data_figures.py the
figures of the data, fit_figures.py those of the fits, each drawn on an Axes it is given.
Every part renders one study.StudyAnalysis, which the statistical core (analysis/study.py) computes once.
"""
from .build import render, report

__all__ = ["report", "render"]
