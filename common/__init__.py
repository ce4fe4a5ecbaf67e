"""common: the facts every package of this project needs, written once. Torch-free and stdlib-only (scipy is
imported lazily where a p-value needs it), so the trainer, the scheduler, the analysis and the GPU proof may all
import it; it imports none of them (tests/test_analysis_imports.py enforces both).

    common.jsonfile    strict JSON and the one atomic file writer
    common.record      the run record's constants and field lists (results/README.md is the contract)
    common.states      the run-state table: a record's status and what the scheduler calls each state
    common.seedtable   the seed's per-epoch console table, read back
    common.welch       Welch's t-test and TOST (two one-sided Welch tests), from two samples
    common.pooling     the seed-noise pooling rule (a cell's variance moderated towards the pool)
"""
