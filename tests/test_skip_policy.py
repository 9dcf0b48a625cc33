"""The skip policy: allowed causes pass, any other skip fails a strict run; the painting fixture."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import SHARED_STYLES, require_painting, style_dir
from skip_policy import ALLOWED, NO_CHROMIUM, NO_GPU, NO_PLAYWRIGHT, StrictSkips, needs_extra, needs_painting

ALLOWED_SKIPS = f"""
import pytest

@pytest.mark.skipif(True, reason={NO_GPU!r})
def test_gpu(): pass

def test_painting(): pytest.skip({needs_painting("wave.jpg")!r})

def test_extra(): pytest.importorskip("no_such_module_here", reason={needs_extra("video")!r})

@pytest.mark.xfail(reason="known")
def test_known(): assert False

def test_runs(): pass
"""


def _run(pytester: pytest.Pytester, source: str, strict: bool) -> pytest.RunResult:
    pytester.makepyfile(test_tiny=source)
    return pytester.runpytest("-p", "no:cacheprovider", plugins=[StrictSkips()] if strict else [])


def test_allowed_skips_pass_a_strict_run(pytester: pytest.Pytester) -> None:
    result = _run(pytester, ALLOWED_SKIPS, strict=True)
    result.assert_outcomes(passed=1, skipped=3, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize(
    "source",
    [
        "import pytest\ndef test_a(): pytest.skip('needs the photos in ../shared/photos')\ndef test_b(): pass\n",
        "import pytest\n@pytest.mark.skipif(True, reason='flaky')\ndef test_a(): pass\n",
        "import pytest\npytest.importorskip('no_such_module_here')\ndef test_a(): pass\n",  # whole module
    ],
)
def test_any_other_skip_fails_a_strict_run_and_is_named(pytester: pytest.Pytester, source: str) -> None:
    result = _run(pytester, source, strict=True)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*skips for a cause not allowed*", "test_tiny.py*"])


def test_a_missing_browser_fails_a_strict_run(pytester: pytest.Pytester) -> None:
    assert not NO_CHROMIUM.startswith(ALLOWED) and not NO_PLAYWRIGHT.startswith(ALLOWED)
    source = f"import pytest\ndef test_browser(): pytest.skip({NO_CHROMIUM!r})\n"
    assert _run(pytester, source, strict=True).ret == pytest.ExitCode.TESTS_FAILED
    assert _run(pytester, source, strict=False).ret == pytest.ExitCode.OK


def test_without_strict_mode_a_skip_is_only_reported(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "import pytest\ndef test_a(): pytest.skip('flaky')\n", strict=False)
    assert result.ret == pytest.ExitCode.OK


def test_style_dir_prefers_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STYLENET_STYLE_DIR", str(tmp_path))
    assert style_dir() == tmp_path
    monkeypatch.delenv("STYLENET_STYLE_DIR")
    assert style_dir() == (SHARED_STYLES if SHARED_STYLES.is_dir() else None)


def test_strict_mode_follows_the_environment(pytestconfig: pytest.Config) -> None:
    strict = os.environ.get("STYLENET_STRICT_SKIPS") == "1"
    assert pytestconfig.pluginmanager.has_plugin("stylenet-strict-skips") == strict


def test_a_painting_not_found_skips_for_an_allowed_cause(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STYLENET_STYLE_DIR", str(tmp_path))  # a folder without the paintings
    with pytest.raises(pytest.skip.Exception, match="needs the painting wave.jpg"):
        require_painting("wave")
    require_painting("starry")  # shipped with the package: never skips
