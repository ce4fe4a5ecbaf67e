"""Commands a study hands work to, each in a subprocess (studies never imports analysis): the law's predictor
([adaptive] predictor, see predictor.py) and the study's [after] command. A leading "python" means the
interpreter running studies, and this checkout comes first on PYTHONPATH, so the command sees the same code as
the scheduler.

[after] runs once every run of the study has an ok record (`studies run` exits 0), as `COMMAND <results>/<study>`,
its output going straight to the terminal. For `reproduce` it is `python -m analysis compare`: the one command
that trains the published cell also says whether the published mean was reproduced.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from .spec import Study

__all__ = ["command_argv", "checkout_env", "after_argv", "run_after"]


def command_argv(command: tuple[str, ...] | list[str]) -> list[str]:
    """The command as it will run: a leading "python" becomes this interpreter."""
    return [sys.executable if i == 0 and part == "python" else part for i, part in enumerate(command)]


def checkout_env() -> dict:
    """This process's environment with this checkout first on PYTHONPATH (its speedrun, studies and analysis)."""
    here = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}


def after_argv(study: Study, results: str | Path) -> list[str]:
    """The study's [after] command for its results folder, as written in the file (for messages)."""
    return [*study.after, str(Path(results) / study.name)]


def run_after(study: Study, results: str | Path) -> int:
    """Run the [after] command (the study must have one); its exit code, 127 when it cannot be started."""
    shown = shlex.join(after_argv(study, results))
    print(f"after the runs: {shown}", flush=True)
    try:
        return subprocess.run(command_argv(after_argv(study, results)), env=checkout_env()).returncode
    except OSError as e:
        print(f"error: the study's [after] command could not start ({e.strerror or e}); fix `command` in [after] "
              f"of {study.source}", file=sys.stderr)
        return 127
