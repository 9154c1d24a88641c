"""Only the C extension is declared here; everything else lives in pyproject.toml.

``_recscan`` walks produce records in C (see records/_recscan.c). It is optional: without
a compiler the install still succeeds and records/recordscan.py uses its Python walk.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("kafkito.records._recscan", ["records/_recscan.c"], optional=True,
                  extra_compile_args=["-O2"]),
        # The client's record loops (records/reccodec.py falls back to Python without it).
        Extension("kafkito.records._reccodec", ["records/_reccodec.c"], optional=True,
                  extra_compile_args=["-O2"]),
    ],
)
