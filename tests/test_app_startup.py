"""`stylenet app`'s bad options: each is one `error:` line and exit status 2, and nothing is built or served."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from skip_policy import needs_extra

from stylenet.cli import main
from stylenet.errors import StylenetError

gr = pytest.importorskip("gradio", reason=needs_extra("app"))

from stylenet.app import options, server  # noqa: E402 (server needs gradio)

URL_LINE = "stylenet app: http"  # the command's own line, printed before it serves


class Page:
    """Stands in for the built page: records launches, or fails them as Gradio does."""

    def __init__(self, failure: OSError | None = None):
        self.launches: list[dict] = []
        self.failure = failure

    def queue(self, **kwargs) -> Page:
        return self

    def launch(self, **kwargs):
        self.launches.append(kwargs)
        if self.failure is not None:
            raise self.failure
        return None, f"http://{kwargs['server_name']}:{kwargs['server_port']}/", None


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[Page]:
    """The pages the command builds: the real `server.create` and `server.launch` run, but no model loads."""
    pages: list[Page] = []
    monkeypatch.setattr(server, "Catalog", lambda *a, **k: SimpleNamespace(notes=[]))
    monkeypatch.setattr(server, "Handlers", lambda *a, **k: "handlers")
    monkeypatch.setattr(server, "build", lambda handlers: pages.append(Page()) or pages[-1])
    return pages


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def refused(capsys: pytest.CaptureFixture, *argv: str) -> str:
    """The single line `stylenet app ARGV` prints besides its address line, having exited with status 2."""
    assert main(["app", *argv]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith(URL_LINE)]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_a_port_in_use_is_one_line(built: list[Page], capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = refused(capsys, "--port", str(port))
    assert line == f"error: port {port} is in use on 127.0.0.1: pass --port with a free port"
    assert not any(page.launches for page in built)


@pytest.mark.parametrize("port", ["99999", "65536", "0", "-1"])
def test_a_port_out_of_range_is_one_line(port: str, built: list[Page], capsys: pytest.CaptureFixture) -> None:
    assert refused(capsys, "--port", port) == f"error: --port {port} is out of range: pass a port from 1 to 65535"
    assert not any(page.launches for page in built)


def test_a_host_of_another_machine_is_one_line_naming_it(built: list[Page], capsys: pytest.CaptureFixture) -> None:
    host = "192.0.2.1"  # TEST-NET-1 (RFC 5737): documentation only, never a machine's own address
    line = refused(capsys, "--host", host, "--port", str(free_port()))
    assert re.fullmatch(rf"error: --host {host} is not an address of this machine \(.+\): pass 127\.0\.0\.1 .+", line)
    assert "empty port" not in line and not any(page.launches for page in built)


def test_an_ipv6_host_needs_brackets(built: list[Page], capsys: pytest.CaptureFixture) -> None:
    line = refused(capsys, "--host", "::1")
    assert line == "error: --host ::1: write an IPv6 address in brackets, as in a URL: [::1]"
    assert not any(page.launches for page in built)


def test_an_unknown_host_name_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def unknown(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(options.socket, "getaddrinfo", unknown)  # no DNS query from the tests
    with pytest.raises(StylenetError, match=r"^--host nosuch\.invalid is not an address or a known name \(name or "):
        options.check_address("nosuch.invalid", 7860)


@pytest.mark.parametrize("size", ["huge", "1.5GB", "200", "MB", "-1MB"])
def test_a_max_file_size_not_of_the_documented_form_is_one_line(
    size: str, built: list[Page], capsys: pytest.CaptureFixture
) -> None:
    line = refused(capsys, f"--max-file-size={size}", "--port", str(free_port()))  # = lets -1MB through argparse
    assert line == f"error: --max-file-size {size} is not a size: give {options.SIZE_FORM}"
    assert "like 200MB or 1GB" in line and not any(page.launches for page in built)


def test_a_max_file_size_of_zero_is_refused(built: list[Page], capsys: pytest.CaptureFixture) -> None:
    line = refused(capsys, "--max-file-size", "0MB", "--port", str(free_port()))
    assert line == f"error: --max-file-size 0MB would refuse every upload: give {options.SIZE_FORM}"


@pytest.mark.parametrize("size", ["99999999999999999999TB", "8388608TB"])
def test_a_max_file_size_past_a_64_bit_count_is_refused(size: str, built: list[Page], capsys) -> None:
    # Gradio holds the limit in a 64-bit integer: past it the page was built, then failed in 500 lines.
    line = refused(capsys, "--max-file-size", size, "--port", str(free_port()))
    assert line == f"error: --max-file-size {size} is more than a file can be: give {options.SIZE_FORM}"
    assert not any(page.launches for page in built)


@pytest.mark.parametrize("memory", ["0G", "0M"])
def test_a_max_memory_of_zero_is_refused_as_stylize_refuses_it(memory: str, built: list[Page], capsys) -> None:
    line = refused(capsys, "--max-memory", memory, "--port", str(free_port()))
    assert line == f"error: --max-memory must be more than zero, not {memory}"
    assert not any(page.launches for page in built)


@pytest.mark.parametrize("size", ["200MB", "1gb", "512 KB", "10B", 100_000, "8388607TB"])
def test_the_documented_sizes_pass(size: str | int) -> None:
    options.check_file_size(size)


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_models_folder_that_is_not_one_stops_before_anything_is_built(
    kind: str, built: list[Page], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "models"
    if kind == "file":
        folder.write_text("not a folder")
    assert main(["app", "--models", str(folder)]) == 2
    what = "is not a folder" if kind == "file" else "does not exist"
    expected = f"error: the models folder {folder} {what}: pass --models with the folder of your .pt files"
    assert capsys.readouterr().err.splitlines() == [expected]  # before the address line: nothing was built
    assert built == []


def test_the_default_models_folder_may_be_missing(
    built: list[Page], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stylenet.pretrained import kept_models_dir

    monkeypatch.chdir(tmp_path)  # no checkpoints/ here: the page offers the shipped styles alone
    assert not kept_models_dir().exists()
    port = free_port()
    assert main(["app", "--port", str(port)]) == 0
    assert [(p["server_name"], p["server_port"]) for page in built for p in page.launches] == [("127.0.0.1", port)]


def test_a_port_taken_between_the_check_and_the_launch_is_one_line() -> None:
    port = free_port()
    gradio_failure = OSError(f"Cannot find empty port in range: {port}-{port}. You can specify a different port ...")
    page = Page(gradio_failure)
    with pytest.raises(StylenetError) as raised:
        server.launch(page, port=port)
    assert str(raised.value) == f"port {port} is in use (or cannot be bound on 127.0.0.1): pass --port with a free port"
    assert len(page.launches) == 1
    with pytest.raises(OSError, match="disk full"):  # any other failure of the launch is not ours to explain
        server.launch(Page(OSError("disk full")), port=port)


def test_gradio_s_own_refusal_of_a_taken_port_is_recognised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options, "check", lambda *args: None)  # as if the port were taken after the check
    with gr.Blocks() as page:
        gr.Markdown("a page")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            with pytest.raises(StylenetError, match=f"^port {port} is in use on 127.0.0.1: pass --port"):
                server.launch(page, port=port, block=False)
        finally:
            page.close()


def test_no_model_that_loads_is_one_line_and_nothing_is_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from stylenet import pretrained

    def cut(target: Path) -> Path:
        target.write_bytes(pretrained.LOCATION.read_bytes()[:100_000])
        return target

    monkeypatch.setattr(pretrained, "LOCATION", cut(tmp_path / "paintings.pt"))
    folder = tmp_path / "models"
    folder.mkdir()
    cut(folder / "broken.pt")
    launches: list[object] = []
    monkeypatch.setattr(server, "launch", lambda *args, **kwargs: launches.append(args))
    line = refused(capsys, "--models", str(folder), "--port", str(free_port()))
    assert line == (
        f"error: no model to offer, none of them loads: {folder / 'broken.pt'}: not a readable stylenet model "
        f"(damaged, truncated or not a file torch wrote); {tmp_path / 'paintings.pt'}: the shipped model file is "
        "truncated or unreadable; reinstall stylenet"
    )
    assert launches == []
