"""speedrun.conformance: checks of the trainer against the seed's own code (hlb-CIFAR10 main.py at 8959293).

Nothing here trains for a study: the trainer (speedrun's top level) never imports this package, and a test
(tests/test_speedrun_conformance_imports.py) holds it to that. Modules:
- seed_load: loads the seed's file as a module without running it (its blob id checked), with CPU rewrites;
- seed_diff: our training loop and the seed's, step for step from the same weights and batches
  (`python -m speedrun.conformance.seed_diff`);
- seed_clock: the seed's own lr schedule and EMA timing, read off its loop with a one-weight network;
- whiten_compare: our pooled whitening against the seed's chunk average, filter by filter
  (`python -m speedrun.conformance.whiten_compare`);
- verify/: the ten-minute GPU proof, all of the above plus a side-by-side with the seed's main.py
  (`python -m speedrun.verify`, an alias of `python -m speedrun.conformance.verify`).
"""
__all__: list[str] = []  # a package of runnable checks: import its modules by name
