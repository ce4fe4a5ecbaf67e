"""`python -m studies ...` — see studies/cli.py."""
from speedrun import exit_status

from .cli import main

if __name__ == "__main__":
    raise SystemExit(exit_status(main()))  # 130 after an orderly interrupt, wherever the interrupt landed
