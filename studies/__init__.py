"""studies: grids of speedrun trainings, described in TOML, executed with joblib/loky on one machine or dask on
many, resumable and safe to run twice at once. See studies/README.md.

    from studies import load_study, run_study, RunOptions
    summary = run_study(load_study("quick"), RunOptions(jobs=1))
"""
from .scheduler import RunOptions, Summary, run_study
from .spec import Adaptive, Policy, Run, Study
from .status import StudyStatus, format_status, study_status
from .store import StoreError, StudyPaths
from .studyfile import StudyError, builtin_studies, load_study, resolve_study

__all__ = ["Study", "Policy", "Run", "Adaptive", "load_study", "resolve_study", "builtin_studies", "StudyError", "RunOptions",
           "Summary", "run_study", "study_status", "format_status", "StudyStatus", "StudyPaths", "StoreError"]
