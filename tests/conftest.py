"""Suite-wide settings.

Hypothesis profiles: ``default`` keeps the whole suite inside CI's time budget on two
cores; ``thorough`` (``HYPOTHESIS_PROFILE=thorough``) runs many more examples locally.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
