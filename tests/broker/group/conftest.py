"""Lets the group tests import their shared harness (group_harness.py) by name."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
