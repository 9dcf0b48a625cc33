"""`stylenet app` served for real: the command, the queue, names refused over HTTP, the upload size limit."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from app_helpers import photo, tiny_model
from skip_policy import needs_extra

from stylenet.cli import main

gr = pytest.importorskip("gradio", reason=needs_extra("app"))
client_module = pytest.importorskip("gradio_client", reason=needs_extra("app"))

from stylenet.app import handlers as handlers_module  # noqa: E402
from stylenet.app import server  # noqa: E402
from stylenet.app.handlers import SLIDERS  # noqa: E402

BLEND = (1.0, *[0.0] * (SLIDERS - 1))
LIMIT = 100_000  # bytes an upload may have in these tests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("models")
    tiny_model(folder / "tiny.pt")
    page = server.create(folder)
    url = server.launch(page, port=free_port(), max_file_size=LIMIT, block=False)
    yield url
    page.close()


@pytest.fixture
def picture(tmp_path: Path) -> str:
    return str(photo(tmp_path / "photo.png"))


def _submit(client, name: str, picture: str):
    handle_file = client_module.handle_file
    return client.submit(name, handle_file(picture), 0, 1.0, False, *BLEND, api_name="/photo")


@pytest.mark.slow
def test_two_requests_at_once_wait_their_turn_and_both_succeed(
    served: str, picture: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, peak, lock = [0], [0], threading.Lock()
    real = handlers_module.process

    def watched(*args, **kwargs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.5)  # long enough for the second request to arrive while the first runs
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(handlers_module, "process", watched)
    client = client_module.Client(served, verbose=False)
    jobs = [_submit(client, "tiny.pt", picture) for _ in range(2)]
    results = [job.result(timeout=300) for job in jobs]
    assert peak[0] == 1  # queued, never in parallel
    for _, result, download in results:
        assert Path(result).is_file() and Path(download).name == "photo_tiny.png"


@pytest.mark.slow
def test_a_name_not_in_the_list_is_refused_over_http(served: str, picture: str) -> None:
    client = client_module.Client(served, verbose=False)
    for name in ("../tiny.pt", str(Path(picture)), "tiny"):
        with pytest.raises(client_module.exceptions.AppError):
            _submit(client, name, picture).result(timeout=300)
    assert Path(_submit(client, "tiny.pt", picture).result(timeout=300)[1]).is_file()  # still serving


@pytest.mark.slow
def test_an_upload_over_the_size_limit_is_refused(served: str, picture: str, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (LIMIT + 1000))
    with open(big, "rb") as file:
        response = httpx.post(f"{served}gradio_api/upload", files={"files": ("big.png", file)}, timeout=60)
    assert response.status_code == 413 and "file size" in response.text.lower()
    with open(picture, "rb") as file:
        assert httpx.post(f"{served}gradio_api/upload", files={"files": ("p.png", file)}, timeout=60).is_success


def test_the_command_serves_with_its_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: dict[str, tuple] = {}
    monkeypatch.setattr(server, "create", lambda *a, **k: calls.setdefault("create", (a, k)) and "page")
    monkeypatch.setattr(server, "launch", lambda *a, **k: calls.setdefault("launch", a))
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)  # and whatever the command sets is undone after
    assert main(["app"]) == 0
    assert calls["create"] == ((Path("checkpoints"),), {"device": "cpu", "max_memory": None})
    assert calls["launch"] == ("page", "127.0.0.1", 7860, "200MB")
    import os

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    calls.clear()
    argv = ["app", "--host", "0.0.0.0", "--port", "8000", "--models", str(tmp_path), "--max-file-size", "1MB"]
    assert main([*argv, "--max-memory", "2G"]) == 0
    assert calls["create"] == ((tmp_path,), {"device": "cpu", "max_memory": 2 << 30})
    assert calls["launch"] == ("page", "0.0.0.0", 8000, "1MB")


def test_without_gradio_the_command_says_what_to_install(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    for name in [m for m in sys.modules if m == "gradio" or m.startswith("stylenet.app")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now fails as if not installed
    assert main(["app"]) == 2
    assert capsys.readouterr().err.strip() == 'error: stylenet app needs Gradio: pip install -e ".[app]"'
