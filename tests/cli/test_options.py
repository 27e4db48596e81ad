"""What the commands share: atomic writes that keep permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from klingspec.cli.options import write_atomically


def test_a_new_file_gets_the_umask_permissions_not_the_temporary_files(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        target = tmp_path / "plan.json"
        write_atomically(str(target), "{}\n")
    finally:
        os.umask(umask)
    assert target.read_text(encoding="utf-8") == "{}\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]


def test_an_existing_file_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "scene.kvs"
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o600)
    write_atomically(str(target), "new\n")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
