"""`python -m speedrun.verify`: the GPU proof under the name the README gives it. The proof
lives in `speedrun.conformance.verify` (with the other checks against the seed's code); this module only hands
over to it, so the trainer's own modules never import the conformance package."""

__all__: list[str] = []

if __name__ == "__main__":
    import sys

    from speedrun.conformance.verify.__main__ import main

    sys.exit(main())
