"""One store per module run, for modules whose tests share a server built once (a ``scope="module"`` fixture).

The ``store_kind`` fixture of tests/conftest.py is per test, but a module-scoped fixture is built before any
per-test fixture and only once: it never saw the test's store and always built SQLite, so the module's
``[postgresql]`` runs read SQLite too. A module that imports ``store_kind`` from here replaces the per-test
fixture with a module-scoped one of the same name: pytest then runs the module's ``[sqlite]`` tests, tears
its shared fixtures down, and builds them again on PostgreSQL for the ``[postgresql]`` tests::

    from tests.module_stores import store_kind_per_module  # noqa: F401 - its fixture is named store_kind

Its shared fixtures ask for ``store_kind`` so they are built again for each store. The databases the
module's tests create (their own ``tmp_path`` included) live until the module's run on that store ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stores import begin_test, end_test, postgres_server_or_skip


@pytest.fixture(scope="module", name="store_kind")
def store_kind_per_module(request: pytest.FixtureRequest) -> Iterator[str]:
    """The module's store for this run: "sqlite" unless parametrised (tests/conftest.py's pytest_generate_tests)."""
    kind = getattr(request, "param", "sqlite")
    # Asked for here, not as an argument: conftest leaves a test that names postgres_server to pick its own store.
    server = postgres_server_or_skip(request.getfixturevalue("postgres_server")) if kind == "postgresql" else None
    stores = begin_test(kind, server)
    yield kind
    end_test(stores)
