"""The wheel carries the grammar, the schemas, the capability matrix and the diagnostic
codes' pages, byte for byte, where `klingspec.resources` looks for them (`klingspec/_data/...`)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("klingspec-*.whl")
    return zipfile.ZipFile(built)


@pytest.mark.parametrize(
    "source, packaged",
    [
        ("grammar/kvs.lark", "klingspec/_data/grammar/kvs.lark"),
        ("schema/request.schema.json", "klingspec/_data/schema/request.schema.json"),
        ("schema/queue.schema.json", "klingspec/_data/schema/queue.schema.json"),
    ],
)
def test_definitions_ship_in_the_wheel(wheel, source, packaged):
    assert wheel.read(packaged) == (ROOT / source).read_bytes()


def test_every_model_schema_ships(wheel):
    schemas = sorted((ROOT / "schema" / "models").glob("*.json"))
    assert [s.stem for s in schemas] == sorted(m.stem for m in (ROOT / "klingspec" / "models").glob("*.toml"))
    for schema in schemas:
        assert wheel.read(f"klingspec/_data/schema/models/{schema.name}") == schema.read_bytes()


def test_every_model_matrix_ships(wheel):
    for matrix in (ROOT / "klingspec" / "models").glob("*.toml"):
        assert wheel.read(f"klingspec/models/{matrix.name}") == matrix.read_bytes()


def test_the_starter_files_ship(wheel):
    for name in ("scene.kvs", "klingspec.toml"):
        assert wheel.read(f"klingspec/starter/{name}") == (ROOT / "klingspec" / "starter" / name).read_bytes()


def test_the_storyboard_templates_ship(wheel):
    """`klingspec preview` renders the pages from the templates beside their modules."""
    for name in ("storyboard.html.j2", "film.html.j2", "prompt.html.j2", "storyboard.py", "thumbnails.py"):
        path = f"klingspec/preview/{name}"
        assert wheel.read(path) == (ROOT / path).read_bytes()


def test_every_code_page_ships(wheel):
    """`klingspec explain CODE` reads them from the installed package."""
    from klingspec.codes import CODES

    pages = sorted((ROOT / "docs" / "codes").glob("*.md"))
    assert {p.stem for p in pages} >= set(CODES)
    for page in pages:
        assert wheel.read(f"klingspec/_data/docs/codes/{page.name}") == page.read_bytes()


def test_explain_reads_the_packaged_pages(wheel, tmp_path):
    """The wheel unpacked away from the repository (first on the path): `explain` finds its pages."""
    site = tmp_path / "site"
    wheel.extractall(site)
    probe = "import sys, klingspec; from klingspec.cli import main; print(klingspec.__file__); sys.exit(main(['explain', 'kvs-no-shots']))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
    )
    where, _, page = done.stdout.partition("\n")
    assert done.returncode == 0, done.stderr
    assert Path(where).is_relative_to(site)
    assert page.startswith("# KVS-no-shots\n")


def test_console_script_is_declared(wheel):
    [entry_points] = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    assert "klingspec = klingspec.cli:main" in wheel.read(entry_points).decode()


def test_the_package_is_marked_typed(wheel):
    assert "klingspec/py.typed" in wheel.namelist()
