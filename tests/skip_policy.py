"""The causes for which a test may skip, and a plugin that fails the run on a skip for any other.

A skip hides a check; a suite that skips for a missing file or a broken install passes while
testing less. `.ci/run` sets STYLENET_STRICT_SKIPS=1, which registers `StrictSkips` (see
conftest.py): the run then fails if any test skipped for a cause not listed here.
"""

from __future__ import annotations

import pytest

NO_GPU = "needs a CUDA GPU"
NOT_GLIBC = "needs glibc (Linux)"


def needs_painting(image: str) -> str:
    return f"needs the painting {image}: not shipped with the package; set STYLENET_STYLE_DIR to a folder holding it"


def needs_extra(extra: str) -> str:
    return f'needs the optional extra {extra}: pip install "stylenet[{extra}]"'


def needs_clip(name: str) -> str:
    return f"needs the clip {name}: not shipped with the repository; expected in ../shared/videos beside the checkout"


# Reasons start with one of these; `needs_painting`, `needs_extra` and `needs_clip` write them.
ALLOWED = (NO_GPU, NOT_GLIBC, "needs the painting ", "needs the optional extra ", "needs the clip ")

# Deliberately not allowed: CI installs Chromium (.ci/run), so a missing browser there is a failure,
# while a user without it sees the browser test skipped with this reason.
NO_CHROMIUM = "needs Chromium for the browser test (apt-get install chromium), found no chromium on PATH"
NO_PLAYWRIGHT = 'needs Playwright for the browser test: pip install -e ".[dev]"'


def skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    """The reason a skipped report gives, without pytest's "Skipped: " prefix."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


class StrictSkips:
    """Fails the session when a test or module skipped for a reason not in `ALLOWED`."""

    def __init__(self) -> None:
        self.refused: list[tuple[str, str]] = []  # (test id, reason)

    def _check(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):  # an xfail is reported as a skip too
            reason = skip_reason(report)
            if not reason.startswith(ALLOWED):
                self.refused.append((report.nodeid, reason))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._check(report)  # pytest.importorskip or pytest.skip at module level

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._check(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.refused and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.refused:
            terminalreporter.section("skips for a cause not allowed (STYLENET_STRICT_SKIPS=1)", red=True)
            for nodeid, reason in self.refused:
                terminalreporter.line(f"{nodeid}: {reason}")
