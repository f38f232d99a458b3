"""Test-session rules: in CI (CI=true) a skipped test fails the run, since a skip proves nothing."""

from __future__ import annotations

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == 0:
        reporter.write_line(
            f"CI: {len(skipped)} test(s) were skipped; install what they need "
            "(see .ci/run and the test extra) so that every test runs.",
            red=True,
        )
        session.exitstatus = 1
