"""The wheel carries the grammar, the schemas and the capability matrix, byte for byte,
where `klingspec.resources` looks for them (`klingspec/_data/...` via importlib.resources)."""

from __future__ import annotations

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


def test_console_script_is_declared(wheel):
    [entry_points] = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    assert "klingspec = klingspec.cli:main" in wheel.read(entry_points).decode()


def test_the_package_is_marked_typed(wheel):
    assert "klingspec/py.typed" in wheel.namelist()
