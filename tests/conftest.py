"""Shared test fixtures. Add yours below; keep each fixture's docstring saying what it gives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tvs.pki import LabPki, Recipe, generate


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """Commands run in-process (``main([...])``) configure structlog for the process, bound to
    the stream of the moment (a capture that pytest closes); put the configuration back after
    every test so later tests never log into a closed stream."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def lab_pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the default recipe's lab PKI, generated once per session.

    Layout: ``enterprise-ca.{pem,key}``, ``<cluster>/{itlrecovery,capf}.{pem,key}``,
    ``<cluster>/nodes/<node>/{callmanager,tvs}.{pem,key}``, ``<cluster>/phones/SEP<MAC>.{pem,key}``
    for clusters ``source`` (node ``ucm105pub``) and ``destination`` (node ``ucm11pub``).
    Treat it as read-only: other tests share it.
    """
    out = tmp_path_factory.mktemp("lab-pki")
    generate(Recipe.default(), out)
    return out


@pytest.fixture(scope="session")
def lab_pki(lab_pki_dir: Path) -> LabPki:
    """The default lab PKI (see ``lab_pki_dir``) loaded: ``lab_pki.clusters["source"].capf`` etc."""
    return LabPki.load(lab_pki_dir, Recipe.default())
