"""kafkito: a Kafka-compatible log broker in Python.

The import package is assembled from the repository's top-level folders:
``kafkito.protocol`` (sans-IO wire codec), ``kafkito.storage`` (the log),
``kafkito.broker`` (the trio server) and ``kafkito.client`` (a Python client).
"""

__version__ = "0.1.0"
