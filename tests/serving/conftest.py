"""Fixtures of the serving tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serving.tfs import tfs_server as start_tfs_server
from tests.support.builds import build_once


@pytest.fixture(scope="session")
def half_plus_two_models(shared_builds) -> Path:
    """TF Serving's half_plus_two (versions 123, 124) and half_plus_three, built once per run and only read."""
    from tests.serving.half_plus_two import build_test_models  # imports TensorFlow: only when asked for

    return Path(build_once(shared_builds / "half_plus_two", lambda folder: {"base": str(build_test_models(folder))})["base"])


@pytest.fixture(scope="module")
def tfs_server(half_plus_two_models, tmp_path_factory):
    """One conformance server per test module (see ``tests.serving.tfs``)."""
    with start_tfs_server(half_plus_two_models, tmp_path_factory.mktemp("tfs_config")) as server:
        yield server
