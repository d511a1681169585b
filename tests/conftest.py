"""Test settings shared by the whole suite."""

from hypothesis import HealthCheck, settings

# Machines here are noisy: no per-example deadline, so a slow moment is never a failure.
settings.register_profile("reference", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("reference")
