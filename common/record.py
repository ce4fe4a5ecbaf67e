"""The run record's constants and field lists (results/README.md documents every field; it is the contract).
The trainer writes records with them and the analysis reads records with them, so a field added here is added
for both."""
from __future__ import annotations

from .states import RECORD_STATUSES

__all__ = ["SCHEMA_VERSION", "METRIC", "STATUSES", "RESULT_FIELDS", "RUN_FIELDS", "EXECUTION_FIELDS"]

SCHEMA_VERSION = 1  # changes when a field is renamed or removed or its meaning changes (results/README.md)
METRIC = "ema_val_acc"  # the headline: final EMA test accuracy, a fraction in [0, 1]
STATUSES = RECORD_STATUSES  # "ok", "diverged", "failed": see common.states

# The results of a run that trained (null in a failed record, whose run never got there).
RESULT_FIELDS = ("ema_val_acc", "val_acc", "val_loss", "train_loss", "train_acc", "train_time_s", "compile_s",
                 "warmup_s", "wall_time_s")
# What a run that never trained cannot know; null in failed records so every record has every field.
RUN_FIELDS = ("device", "device_name", "precision", "train_flops", "flops_per_epoch", "train_images",
              "test_images", "data_source", "steps", "ema_updates")

# Config fields that say *where/how* a run executes but cannot change its result: they stay out of run_id (so
# the same run is recognised on another machine and results folders can be merged) and never define a grid cell.
EXECUTION_FIELDS = frozenset({"device", "data_dir", "compile", "cuda_graph", "threads", "eval_batch_size"})
