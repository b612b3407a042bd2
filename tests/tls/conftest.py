"""Fixtures of the TLS tests: one generated PKI per module."""

from __future__ import annotations

import pytest

from tests.tls.pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
