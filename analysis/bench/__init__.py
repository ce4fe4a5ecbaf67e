"""analysis.bench: offline benchmarks of the statistics on synthetic data (never run by a report), one per CLI
command: calibrate.py (`python -m analysis calibrate`: how often the fits' 95% intervals cover the truth),
calibrate_checks.py (`calibrate-checks`: the size and power of the checks' joint test on one study) and
report_speed.py (`bench-report`: the time of a report on a 140-run grid). Results go under
results/benchmarks/.
"""
