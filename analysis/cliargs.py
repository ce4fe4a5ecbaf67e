"""Argument types shared by the analysis commands: one line of error each, as argparse shows it."""
from __future__ import annotations

import argparse
import math

__all__ = ["positive", "numbers"]


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def numbers(text: str) -> list:
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a number (give a comma-separated list, e.g. 8,16,64)") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{part!r} is not a positive number")
        values.append(value)
    return values
