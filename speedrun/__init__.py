"""speedrun: the hlb-CIFAR10 v0.3.0 trainer as a library — width and epochs as knobs, the exact recipe."""
from .config import EXECUTION_FIELDS, ConfigError, Derived, TrainConfig, run_id
from .data import DataError
from .flops import model_stats
from .record import estimate_train_flops, failed_record
from .train import train

__version__ = "0.1.0"

__all__ = ["TrainConfig", "ConfigError", "Derived", "DataError", "EXECUTION_FIELDS", "train", "run_id",
           "model_stats", "failed_record", "estimate_train_flops", "__version__"]
