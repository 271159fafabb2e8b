"""pytest options of the conformance suite.

``--impl NAME`` chooses the implementation under test: a built-in adapter name (``optimized``) or
``module:attr`` for your own adapter; the default is ``$RLSPEC_IMPL``, else ``optimized``.
``--expectations PATH`` overrides the implementation's expectation file; ``--algorithms a,b`` restricts the
entries, as ``rlspec check --algorithms`` does.
(The hypothesis profiles are in the root ``conftest.py``.)
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rlspec", "rlspec conformance")
    group.addoption("--impl", action="store", default=os.environ.get("RLSPEC_IMPL", "optimized"),
                    help="implementation under test: built-in adapter name or module:attr "
                         "(default: $RLSPEC_IMPL or 'optimized')")
    group.addoption("--algorithms", action="store", default=None,
                    help="comma-separated registry entries to check (default: every entry the implementation "
                         "supports), as `rlspec check --algorithms`")
    group.addoption("--expectations", action="store", default=None,
                    help="expectation file (default: as rlspec check: beside a module:attr adapter's module "
                         "NAME-VERSION.txt, MODULE.txt or NAME.txt; conformance/expectations/ for built-in ones)")


@pytest.fixture(scope="session")
def impl_name(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--impl")


@pytest.fixture(scope="session")
def adapter(impl_name: str):
    from rlspec.conformance import adapters

    try:
        a = adapters.load(impl_name)
    except ImportError as e:
        pytest.skip(f"implementation {impl_name!r} is not installed: {e}")
    ok, why = a.available()
    if not ok:
        pytest.skip(f"implementation {impl_name!r} is not installed: {why}")
    return a
