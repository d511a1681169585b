"""Test settings shared by the whole suite."""

import pytest
from hypothesis import HealthCheck, settings

# Machines here are noisy: no per-example deadline, so a slow moment is never a failure.
settings.register_profile("reference", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("reference")


@pytest.fixture(autouse=True)
def _home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test, and every process it starts, sees a fresh home folder: the default data_dir
    (``~/.obscura-ref``, where bans are kept) never leaks between tests or into the user's."""
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
