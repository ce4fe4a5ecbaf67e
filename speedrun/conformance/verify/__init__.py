"""The ten-minute GPU proof (`python -m speedrun.verify`): environment, seed_diff in fp16, whitening, the
interleaved side-by-side against the seed's own main.py, benches. See __main__.py."""
__all__: list[str] = []
