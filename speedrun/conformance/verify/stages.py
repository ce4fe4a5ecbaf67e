"""What the proof's stages share: one clock against the budget, child processes that are killed at their limit
with everything they printed kept, and the environment record."""
from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Clock", "Outcome", "run_child", "environment", "nvidia_smi", "Log"]


class Clock:
    """Seconds since the proof started, and what is left of its budget."""

    def __init__(self, budget_s: float):
        self.t0, self.budget_s = time.monotonic(), budget_s

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()


class Log:
    """Lines to the console and appended to a file (flushed per line: a cut-off run keeps them)."""

    def __init__(self, path: Path, clock: Clock):
        self.path, self.clock = path, clock

    def __call__(self, line: str, *, also: Path | None = None) -> None:
        stamped = f"[{self.clock.elapsed():6.1f}s] {line}"
        print(stamped, flush=True)
        for target in (self.path, also):
            if target is not None:
                with open(target, "a", encoding="utf-8") as f:
                    f.write(stamped + "\n")


@dataclass(frozen=True)
class Outcome:
    returncode: int | None  # None: killed at its time limit
    seconds: float
    output: str

    @property
    def status(self) -> str:
        if self.returncode is None:
            return "cut off at its time limit"
        return "ok" if self.returncode == 0 else f"failed (exit {self.returncode})"


def run_child(cmd: list[str], *, limit_s: float, log: Log, cwd: Path | None = None, env: dict | None = None,
              tee: Path | None = None) -> Outcome:
    """Run `cmd`, echoing each output line to the log (and to `tee`, unstamped, when given); kill its whole
    process group once `limit_s` has passed. Output printed before the kill is kept and returned."""
    log(f"$ {' '.join(cmd)}  (limit {limit_s:.0f} s{f', in {cwd}' if cwd else ''})")
    t0 = time.monotonic()
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, start_new_session=True)
    lines: list[str] = []
    killed = False

    def kill(*_):
        nonlocal killed
        killed = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(max(limit_s, 0.0), kill)
    timer.start()
    try:
        for line in proc.stdout:  # ends when the child (and its group) is gone
            line = line.rstrip("\n")
            lines.append(line)
            log(f"  {line}")
            if tee is not None:
                with open(tee, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            kill()
            proc.wait()
    seconds = time.monotonic() - t0
    outcome = Outcome(None if killed else proc.returncode, seconds, "\n".join(lines))
    log(f"  -> {outcome.status} after {seconds:.1f} s")
    return outcome


def nvidia_smi() -> dict:
    """Clocks, power and driver as nvidia-smi reports them now (empty where it is absent)."""
    if shutil.which("nvidia-smi") is None:
        return {}
    fields = ("name", "driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem",
              "power.draw", "power.limit", "temperature.gpu", "utilization.gpu", "memory.used", "memory.total")
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {f"gpu{i}": dict(zip(fields, (v.strip() for v in line.split(",")))) for i, line in enumerate(out)}


def environment() -> dict:
    """The machine and software the proof runs on."""
    import numpy
    import torch

    from ...record import provenance

    env = dict(python=sys.version.split()[0], platform=platform.platform(), cpu_count=os.cpu_count(),
               torch=torch.__version__, numpy=numpy.__version__, cuda_available=torch.cuda.is_available(),
               torch_cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if torch.cuda.is_available()
               else None, nvidia_smi=nvidia_smi(), **provenance())
    for name in ("scipy", "pandas", "torchvision"):
        try:
            env[name] = __import__(name).__version__
        except Exception as exc:  # absent or broken: say so, the proof goes on
            env[name] = f"unavailable ({type(exc).__name__})"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env["gpu"] = dict(name=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                          multiprocessors=p.multi_processor_count)
    return env
