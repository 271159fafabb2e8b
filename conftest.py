"""Root pytest configuration: hypothesis profiles shared by every suite.

Profiles: ``dev`` (quick, random), ``ci`` (derandomized, the default), ``nightly`` (many examples).
Choose with ``--hypothesis-profile=NAME`` or ``HYPOTHESIS_PROFILE``.
"""

import os

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=20, **_common)
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_common)
settings.register_profile("nightly", max_examples=1000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
