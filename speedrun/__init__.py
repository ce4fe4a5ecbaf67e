"""speedrun: the hlb-CIFAR10 v0.3.0 trainer as a library — width and epochs as knobs, the exact recipe.

This top level is the trainer alone: config → data, whitening, model → train (eager) or engine (compiled) →
record; runtime holds the precision table, cli the commands. speedrun.conformance holds the checks against the
seed's own code, which the trainer never imports (speedrun/README.md says more, and lists the recipe's facts).
"""
from .cli import exit_status
from .config import EXECUTION_FIELDS, ConfigError, Derived, TrainConfig, run_id, run_id_by_seed
from .data import DataError
from .failures import failure_kind, free_device_memory
from .flops import model_stats, train_flops
from .record import STATUSES, failed_record
from .runtime import PRECISIONS, device_name
from .table import EPOCH_COLUMNS, epoch_header, epoch_line
from .train import train
from .writer import atomic_write_text, fsync_dir, json_text, strict_json, write_json

__version__ = "0.1.0"

__all__ = ["TrainConfig", "ConfigError", "Derived", "DataError", "EXECUTION_FIELDS", "PRECISIONS", "STATUSES",
           "device_name", "train", "run_id", "run_id_by_seed", "model_stats", "train_flops", "failed_record",
           "atomic_write_text", "write_json", "json_text", "strict_json", "fsync_dir",
           "EPOCH_COLUMNS", "epoch_header", "epoch_line", "exit_status", "failure_kind", "free_device_memory",
           "__version__"]
