"""Reading a study file (TOML) and checking every part of it before anything runs.

    name = "quick"                      # required: letters, digits, '.', '_', '-'; names the results folder
    description = "..."                 # required: one or more sentences
    [grid]                              # required: lists of values; the runs are their cartesian product
    width = [8, 16, 32]                 # any TrainConfig field except execution-only ones
    seed = [0, 1]
    [fixed]                             # optional: one value per TrainConfig field, for every run
    train_subset = 5000
    [policy]                            # optional
    retries = 1                         # extra attempts after a failure (default 1)
    timeout_s = 1800                    # per attempt, checked after each epoch (default: none)
    kill_grace_s = 300                  # past timeout_s by this much inside an epoch: end the worker (default 300)
    [adaptive]                          # optional: the policy of `studies run --adaptive` (see adaptive.py)
    target_se = 0.10                    # or target_halfwidth = 0.15 with at = { width = 128, epochs = 80 }
    [after]                             # optional: once every run is ok, `COMMAND <results>/<name>` (plugins.py)
    command = ["python", "-m", "analysis", "compare"]
    [slurm]                             # optional: job settings for --backend slurm (slurm.py)
    partition = "gpu"

Every problem found is reported (file, key, what is allowed, what to do), not just the first; `StudyError`
carries them all. Each grid point is built into a TrainConfig, so an invalid value is caught here, not an
hour into the study.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import speedrun
from speedrun import EXECUTION_FIELDS, ConfigError, TrainConfig

from .adaptive import NOISE_CHOICES
from .slurm import check_slurm_table
from .spec import MAX_RUNS, Adaptive, Policy, Study

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the `tomli` package (a dependency there)
    import tomli as tomllib

__all__ = ["StudyError", "load_study", "resolve_study", "builtin_studies", "GRIDS_DIR"]

GRIDS_DIR = Path(__file__).parent / "grids"
_TOP_KEYS = {"name": str, "description": str, "grid": dict, "fixed": dict, "policy": dict, "adaptive": dict,
             "after": dict, "slurm": dict}
_REQUIRED = ("name", "description", "grid")
_POLICY_KEYS = {"retries": "an integer >= 0", "timeout_s": "a number of seconds > 0",
                "kill_grace_s": "a number of seconds > 0"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SCALARS = (bool, int, float, str)
_TOML_TYPES = {str: "a string", dict: "a table", list: "a list", int: "an integer", float: "a number"}


class StudyError(ValueError):
    """A study cannot be used; `problems` holds one line per problem, each naming the file and the key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def builtin_studies() -> list[str]:
    return sorted(p.stem for p in GRIDS_DIR.glob("*.toml"))


def resolve_study(name_or_path: str | Path) -> Path:
    """A built-in study's name (`quick`) or a path to a .toml file -> the file's path."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix == ".toml" or path.exists() or "/" in text or "\\" in text:
        if not path.is_file():
            raise StudyError([f"{text}: no such study file; pass a path to a .toml file or a built-in name "
                              f"({', '.join(builtin_studies())})"])
        return path
    builtin = GRIDS_DIR / f"{text}.toml"
    if not builtin.is_file():
        raise StudyError([f"{text!r} is not a built-in study; built-ins are {', '.join(builtin_studies())} "
                          f"(in {GRIDS_DIR}); to use your own, pass a path to a .toml file"])
    return builtin


def load_study(name_or_path: str | Path, *, max_runs: int | None = MAX_RUNS) -> Study:
    """Read and validate a study; raises StudyError listing every problem. A grid of more than `max_runs` runs
    is refused before it is expanded (None: no limit)."""
    path = resolve_study(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise StudyError([f"{path}: cannot read it ({e})"]) from None
    except tomllib.TOMLDecodeError as e:
        raise StudyError([f"{path}: not valid TOML ({e}); see https://toml.io for the syntax"]) from None
    return _validate(data, path, max_runs)


def _validate(data: dict, path: Path, max_runs: int | None = MAX_RUNS) -> Study:
    problems: list[str] = []

    def problem(key: str, message: str) -> None:
        problems.append(f"{path}: {key}: {message}")

    for key in data:
        if key not in _TOP_KEYS:
            problem(key, f"unknown key; valid top-level keys are {', '.join(_TOP_KEYS)} — "
                         f"rename or remove it (TrainConfig fields go in [grid] or [fixed])")
    for key in _REQUIRED:
        if key not in data:
            problem(key, f"missing; a study needs {', '.join(_REQUIRED)} — add it")
    for key, kind in _TOP_KEYS.items():
        if key in data and not isinstance(data[key], kind):
            problem(key, f"is {_describe(data[key])}; expected {_TOML_TYPES[kind]}"
                         + (f" — write it as [{key}]" if kind is dict else ""))
    name, description = data.get("name"), data.get("description")
    if isinstance(name, str) and not _NAME.match(name):
        problem("name", f"{name!r} cannot name a results folder; use 1-64 letters, digits, '.', '_' or '-', "
                        f"starting with a letter or digit")
    if isinstance(description, str) and not description.strip():
        problem("description", "is empty; say in a sentence what the study asks")

    grid = data.get("grid") if isinstance(data.get("grid"), dict) else {}
    fixed = data.get("fixed") if isinstance(data.get("fixed"), dict) else {}
    if "grid" in data and isinstance(data["grid"], dict) and not grid:
        problem("grid", "is empty; list at least one TrainConfig field with its values, e.g. seed = [0, 1]")
    valid = [f.name for f in dataclasses.fields(TrainConfig)]
    for section, table in (("grid", grid), ("fixed", fixed)):
        for key in table:
            if key not in valid:
                problem(f"{section}.{key}", f"unknown TrainConfig field; valid fields: {', '.join(valid)}")
    for key, values in grid.items():
        _check_grid_values(f"grid.{key}", values, problem)
        if key in EXECUTION_FIELDS:
            problem(f"grid.{key}", f"is execution-only ({', '.join(sorted(EXECUTION_FIELDS))}): runs differing "
                                   f"only in it share a run_id — set it in [fixed] or on the command line")
        if key in fixed:
            problem(f"grid.{key}", "is also set in [fixed]; a field is either varied or fixed — remove one")
    for key, value in fixed.items():
        if not isinstance(value, _SCALARS):
            problem(f"fixed.{key}", f"is {_describe(value)}; expected one value (number, string or boolean)"
                                    + (" — to vary it, move it to [grid]" if isinstance(value, list) else ""))
    policy = _check_policy(data.get("policy"), problem) if isinstance(data.get("policy", {}), dict) else Policy()
    adaptive = (_check_adaptive(data["adaptive"], [k for k in grid if k != "seed"], problem)
                if isinstance(data.get("adaptive"), dict) else None)
    after = _check_after(data["after"], problem) if isinstance(data.get("after"), dict) else ()
    slurm = check_slurm_table(data["slurm"], problem) if isinstance(data.get("slurm"), dict) else {}
    if problems:
        raise StudyError(problems)

    study = Study(name=name, description=description.strip(), grid={k: tuple(v) for k, v in grid.items()},
                  fixed=dict(fixed), policy=policy, source=str(path), adaptive=adaptive, after=after, slurm=slurm)
    if max_runs is not None and study.size > max_runs:
        sizes = " x ".join(f"{len(v)} {k}" for k, v in study.grid.items())
        raise StudyError([f"{path}: grid: {sizes} = {study.size:,} runs, over the limit of {max_runs:,} "
                          f"(a typo?); shorten the lists, or pass --allow-large-grid if you mean it"])
    _check_configs(study, problem)
    if not problems and adaptive is not None and adaptive.budget_flops is not None:
        first = sum(speedrun.train_flops(study.run_at({**cell, "seed": seed}).config)
                    for cell in study.cells() for seed in study.seeds(adaptive.min_seeds))
        if first > adaptive.budget_flops:
            problem("adaptive.budget_flops", f"is {adaptive.budget_flops:.3g}, but min_seeds = {adaptive.min_seeds} "
                                             f"in every cell already costs {first:.3g} FLOPs — raise the budget or "
                                             f"lower min_seeds")
    if problems:
        raise StudyError(problems)
    return study


_ADAPTIVE_KEYS = {
    "min_seeds": "an integer >= 2 (seeds every cell gets first; default 3)",
    "max_seeds": "an integer >= min_seeds (the most seeds a cell gets; default 10)",
    "batch": "an integer >= 1 (seeds added per round; default 1 — set it to the number of devices)",
    "target_se": "a number > 0: every cell's standard error of ema_val_acc, in accuracy points (e.g. 0.10)",
    "target_halfwidth": "a number > 0: half-width of the law's 95% interval at `at`, in accuracy points",
    "at": "a table naming the cell for target_halfwidth, e.g. at = { width = 128, epochs = 80 }",
    "interval": "\"ci95\" (the law's mean, default) or \"pi95\" (one new run; never narrower than the seed noise)",
    "budget_flops": "a number > 0: the most training FLOPs all the study's runs may take",
    "predictor": "a list of strings: the command that fits the law (default [\"python\", \"-m\", \"analysis\", "
                 "\"predict\"])",
    "noise": f"one of {', '.join(map(repr, NOISE_CHOICES))}: how target_se pools the cells' seed sd, relative "
             f"to each cell's error or in points (default \"auto\": whichever the cells' spread favours)",
}


def _check_after(table: dict, problem) -> tuple[str, ...]:
    """The [after] table: `command`, a non-empty list of strings (called with the study's results folder)."""
    for key in table:
        if key != "command":
            problem(f"after.{key}", "unknown key; [after] takes only `command`")
    command = table.get("command")
    if not _is_command(command):
        problem("after.command", f"is {'missing' if command is None else repr(command)}; expected a list "
                                 f"of strings, e.g. [\"python\", \"-m\", \"analysis\", \"compare\"] (called "
                                 f"with the study's results folder once every run is done)")
        return ()
    return tuple(command)


def _is_command(value: Any) -> bool:
    """A plug-in command ([after] command, [adaptive] predictor): a non-empty list of non-empty strings."""
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(a, str) and a for a in value)


def _check_adaptive(table: dict, axes: list[str], problem) -> Adaptive | None:
    """The [adaptive] table; every problem reported, None when there was one."""
    bad: list[str] = []

    def complain(key: str, message: str) -> None:
        bad.append(key)
        problem(f"adaptive.{key}", message)

    for key in table:
        if key not in _ADAPTIVE_KEYS:
            complain(key, f"unknown key; valid: {', '.join(_ADAPTIVE_KEYS)}")
    values = {**{f.name: f.default for f in dataclasses.fields(Adaptive)}, **table}
    for key in ("min_seeds", "max_seeds", "batch"):
        v = values[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < (2 if key == "min_seeds" else 1):
            complain(key, f"is {v!r}; expected {_ADAPTIVE_KEYS[key]}")
    if "max_seeds" not in bad and "min_seeds" not in bad and values["max_seeds"] < values["min_seeds"]:
        complain("max_seeds", f"is {values['max_seeds']}, below min_seeds = {values['min_seeds']}; raise it")
    for key in ("target_se", "target_halfwidth", "budget_flops"):
        v = values[key]
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0):
            complain(key, f"is {v!r}; expected {_ADAPTIVE_KEYS[key]}")
    if (values["target_se"] is None) == (values["target_halfwidth"] is None):
        complain("target_se", "give exactly one target: target_se (per cell) or target_halfwidth (the law at `at`)")
    at = values["at"]
    if values["target_halfwidth"] is not None and not isinstance(at, dict):
        complain("at", f"is missing or not a table; target_halfwidth needs {_ADAPTIVE_KEYS['at']}")
    elif at is not None:
        if values["target_halfwidth"] is None:
            complain("at", "only applies to target_halfwidth; remove it or set target_halfwidth")
        elif not at or any(k not in axes or not isinstance(v, (int, float)) or isinstance(v, bool)
                           for k, v in at.items()):
            complain("at", f"is {at!r}; expected numbers for grid axes among {', '.join(axes) or '(none)'}")
    if values["interval"] not in ("ci95", "pi95"):
        complain("interval", f"is {values['interval']!r}; expected {_ADAPTIVE_KEYS['interval']}")
    if values["noise"] not in NOISE_CHOICES:
        complain("noise", f"is {values['noise']!r}; expected {_ADAPTIVE_KEYS['noise']}")
    elif "noise" in table and values["target_se"] is None:
        complain("noise", "only applies to target_se (the law's predictor models its own noise); remove it")
    predictor = values["predictor"]
    if not _is_command(predictor):
        complain("predictor", f"is {predictor!r}; expected {_ADAPTIVE_KEYS['predictor']}")
    if bad:
        return None
    return Adaptive(min_seeds=values["min_seeds"], max_seeds=values["max_seeds"], batch=values["batch"],
                    target_se=_float(values["target_se"]), target_halfwidth=_float(values["target_halfwidth"]),
                    at=dict(at) if at else None, interval=values["interval"],
                    budget_flops=_float(values["budget_flops"]), predictor=tuple(predictor), noise=values["noise"])


def _float(value) -> float | None:
    return float(value) if value is not None else None


def _check_grid_values(key: str, values: Any, problem) -> None:
    if not isinstance(values, list):
        problem(key, f"is {_describe(values)}; grid values must be a list, e.g. [{values!r}] "
                     f"(or move the field to [fixed])")
        return
    if not values:
        problem(key, "is an empty list; give at least one value or remove the field")
    seen: list[Any] = []
    for i, v in enumerate(values):
        if not isinstance(v, _SCALARS):
            problem(f"{key}[{i}]", f"is {_describe(v)}; each grid value is a number, string or boolean")
            continue
        if any(type(v) is type(s) and v == s for s in seen):
            problem(key, f"value {v!r} appears more than once; each value must appear once — remove the repeat")
        seen.append(v)


def _check_policy(policy: dict | None, problem) -> Policy:
    policy = policy or {}
    for key in policy:
        if key not in _POLICY_KEYS:
            problem(f"policy.{key}", f"unknown key; valid: {', '.join(_POLICY_KEYS)}")
    retries, timeout = policy.get("retries", Policy.retries), policy.get("timeout_s", Policy.timeout_s)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        problem("policy.retries", f"is {retries!r}; expected {_POLICY_KEYS['retries']}")
        retries = Policy.retries
    if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0):
        problem("policy.timeout_s", f"is {timeout!r}; expected {_POLICY_KEYS['timeout_s']} (leave it out for none)")
        timeout = None
    grace = policy.get("kill_grace_s", Policy.kill_grace_s)
    if not isinstance(grace, (int, float)) or isinstance(grace, bool) or grace <= 0:
        problem("policy.kill_grace_s", f"is {grace!r}; expected {_POLICY_KEYS['kill_grace_s']}")
        grace = Policy.kill_grace_s
    return Policy(retries=retries, timeout_s=float(timeout) if timeout is not None else None,
                  kill_grace_s=float(grace))


def _check_configs(study: Study, problem) -> None:
    """Build the TrainConfig of every grid point; group identical errors so each is reported once."""
    errors: dict[tuple[str, str | None], list[dict]] = {}  # (message, field at fault) -> points

    def failed(point: dict, e: Exception) -> None:
        errors.setdefault((str(e).splitlines()[0], getattr(e, "field", None)), []).append(point)

    ids: dict[str, dict] = {}
    total = study.size
    runs = []
    derived: dict[tuple, Exception | None] = {}  # per cell (the seed changes no derived value)
    for run in study.expand(on_error=failed):
        key = run.cell(study.cell_fields)
        if key not in derived:
            try:
                run.config.derived()  # also checks what depends on the data size (steps per epoch >= 1)
                derived[key] = None
            except (ConfigError, TypeError, ValueError) as e:
                derived[key] = e
        if derived[key] is not None:
            failed(run.point, derived[key])
            continue
        runs.append(run)
        if run.run_id in ids:
            problem("grid", f"points {ids[run.run_id]} and {run.point} are the same run (run_id {run.run_id}); "
                            f"remove the duplicate")
        ids[run.run_id] = run.point
    if len(runs) == total:
        vars(study)["_runs"] = tuple(runs)  # Study.runs()'s cache: the grid is expanded once, here
    for (message, field_name), bad in errors.items():
        key = (f"grid.{field_name}" if field_name in study.grid else f"fixed.{field_name}"
               if field_name in study.fixed else f"{field_name} (default)" if field_name else "grid")
        where = "" if len(bad) == total else (
            f" (in {len(bad)} of {total} runs, e.g. {', '.join(f'{k}={v}' for k, v in bad[0].items())})")
        problem(key, f"{message}{where} — change the value in the study file")


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    for kind, words in _TOML_TYPES.items():
        if isinstance(value, kind):
            return f"{words} ({value!r})" if kind not in (dict, list) else words
    return f"a {type(value).__name__} ({value!r})"
