"""kafkito's benchmarks: ``python -m bench run`` (see bench/__main__.py and bench/harness/).

Not part of the installed package: run it from the repository root with the project's
virtualenv. Besides the side-by-side harness, this folder holds single-purpose
benchmarks kept by their owners (startup_bench.py, codec_bench.py, storage_bench.py).
"""
