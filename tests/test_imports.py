"""Each command imports only what it needs: `check` starts without the network client,
the watcher, the language server, the schema validator or the terminal UI library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("httpx", "watchfiles", "pygls", "lsprotocol", "jsonschema", "rich", "starlette", "uvicorn", "PIL")
PROBE = """
import json, sys
from klingspec.cli import main
code = main({argv!r})
print(json.dumps({{"code": code, "loaded": [m for m in {heavy!r} if m in sys.modules],
                   "klingspec": sorted(m for m in sys.modules if m.startswith("klingspec"))}}))
"""
WINGS = ("klingspec.run", "klingspec.lsp", "klingspec.sandbox")
CHECK_COMMAND = {"klingspec.cli", "klingspec.cli.report", "klingspec.cli.options", "klingspec.cli.checks"}


def _loaded(argv: list[str], cwd, heavy: tuple[str, ...] = HEAVY) -> dict:
    probe = PROBE.format(argv=argv, heavy=heavy)
    done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "scene.kvs"
    path.write_text('let mood = "dusk"\nshot opening 5s "a red balloon at {{ mood }}"\n', encoding="utf-8")
    return path


def test_check_loads_no_heavy_module(script, tmp_path):
    result = _loaded(["check", str(script)], tmp_path)
    assert (result["code"], result["loaded"]) == (0, [])


def test_check_json_loads_no_heavy_module(script, tmp_path):
    result = _loaded(["check", "--format", "json", str(script)], tmp_path)
    assert (result["code"], result["loaded"]) == (0, [])


def test_checks_import_path_loads_no_wing(script, tmp_path):
    """Neither the runner, the editor nor the sandbox, and of the command line only the
    `check` command itself (and its cache)."""
    for argv in (["check", "--no-cache", str(script)], ["check", str(script)]):
        loaded = _loaded(argv, tmp_path)["klingspec"]
        assert not [m for m in loaded if m.startswith(WINGS)]
        assert {m for m in loaded if m.startswith("klingspec.cli")} - {"klingspec.cli.cache"} == CHECK_COMMAND


def test_check_parses_without_lark(script, tmp_path):
    """The parser is the stand-alone one generated from the grammar (klingspec/_kvs_parser.py):
    neither Lark nor its grammar compiler loads, and the tables are not built at start-up."""
    result = _loaded(["check", "--no-cache", str(script)], tmp_path, heavy=("lark", "lark.load_grammar"))
    assert (result["code"], result["loaded"]) == (0, [])
    assert "klingspec._kvs_parser" in result["klingspec"]


def test_check_no_cache_skips_the_standard_library_it_does_not_use(script, tmp_path):
    """No hashing or pickling without a cache, no logging set up for a parser that logs
    nothing, no pathlib where os.path does."""
    result = _loaded(["check", "--no-cache", str(script)], tmp_path, heavy=("hashlib", "pickle", "logging", "pathlib"))
    assert (result["code"], result["loaded"]) == (0, [])


def test_compile_needs_only_the_schema_validator(script, tmp_path):
    result = _loaded(["compile", str(script)], tmp_path)
    assert (result["code"], result["loaded"]) == (0, ["jsonschema"])


def test_plan_adds_the_table_but_no_network(script, tmp_path):
    result = _loaded(["plan", str(script)], tmp_path)
    assert result["code"] == 0
    assert set(result["loaded"]) == {"jsonschema", "rich"}


def test_check_online_adds_only_the_http_client(script, tmp_path):
    """`--online` loads httpx and the URL prober, and nothing else of the runner."""
    result = _loaded(["check", "--online", str(script)], tmp_path)
    assert result["code"] == 0 and "httpx" in result["loaded"]
    assert set(result["loaded"]) <= {"httpx", "rich"}  # `import httpx` loads rich for its own CLI
    assert [m for m in result["klingspec"] if m.startswith(WINGS)] == ["klingspec.run", "klingspec.run.reachability"]


def test_preview_adds_the_schema_validator_only(script, tmp_path):
    """The storyboard needs the compiled request (jsonschema) and Jinja2, not the table,
    the network or Pillow (a URL-only script has no local image to shrink)."""
    result = _loaded(["preview", str(script), "-o", str(tmp_path / "board.html")], tmp_path)
    assert (result["code"], result["loaded"]) == (0, ["jsonschema"])
    assert not [m for m in result["klingspec"] if m.startswith(WINGS)]
    assert "klingspec.preview.thumbnails" not in result["klingspec"]


def test_check_of_urls_only_never_loads_pillow(tmp_path):
    """Pillow (and klingspec.images) load only for a script that names a local file."""
    urls = tmp_path / "urls.kvs"
    urls.write_text(
        'assets aurora/refs\nimage cafe = "https://cdn.example.com/cafe.png"\nshot a 5s "@cafe at dawn"\n',
        encoding="utf-8",
    )
    result = _loaded(["check", "--no-cache", str(urls)], tmp_path)
    assert (result["code"], result["loaded"]) == (0, [])
    assert "klingspec.images" not in result["klingspec"]


def test_check_of_a_local_image_loads_pillow(tmp_path):
    """The other side of the test above: it would pass vacuously if nothing ever loaded Pillow."""
    from PIL import Image

    Image.new("RGB", (320, 320)).save(tmp_path / "cafe.png")
    local = tmp_path / "local.kvs"
    local.write_text('assets aurora/refs\nimage cafe = "cafe.png"\nshot a 5s "@cafe at dawn"\n', encoding="utf-8")
    result = _loaded(["check", "--no-cache", str(local)], tmp_path)
    assert (result["code"], result["loaded"]) == (0, ["PIL"])
    assert "klingspec.images" in result["klingspec"]
