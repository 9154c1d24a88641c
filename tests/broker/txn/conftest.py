"""Lets the transaction tests import their shared driver (txn_harness.py) by name."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
