"""Only the C extensions are declared here; everything else lives in pyproject.toml.

``_recscan`` walks produce records in C (see records/_recscan.c); ``_reccodec`` encodes and
decodes batch records for the client (records/_reccodec.c); ``_partitioner`` is the keyed
producer's murmur2 (client/_partitioner.c); ``_offsetmap`` is the log cleaner's key map and
record loops (storage/_offsetmap.c). Each is optional: without a compiler the
install still succeeds and the Python reference beside it is used.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("kafkito.records._recscan", ["records/_recscan.c"], optional=True,
                  extra_compile_args=["-O2"]),
        # The client's record loops (records/reccodec.py falls back to Python without it).
        Extension("kafkito.records._reccodec", ["records/_reccodec.c"], optional=True,
                  extra_compile_args=["-O2"]),
        # The log cleaner's offset map (storage/offset_map.py falls back to Python without it).
        Extension("kafkito.storage._offsetmap", ["storage/_offsetmap.c"], optional=True,
                  extra_compile_args=["-O2"]),
        # The keyed producer's murmur2 (client/partitioner.py falls back to Python without it).
        Extension("kafkito.client._partitioner", ["client/_partitioner.c"], optional=True,
                  extra_compile_args=["-O2"]),
    ],
)
