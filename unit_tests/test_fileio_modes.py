"""Modes of published folders and files follow the umask at the time of the write, not at import."""

import os
import stat
from pathlib import Path

import pytest

from finrl.fileio import atomic_write_text, current_umask, replace_directory


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root.parent)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def _fill(staging: Path) -> None:
    (staging / "sub").mkdir()
    (staging / "sub" / "a.txt").write_text("a")
    atomic_write_text(staging / "b.json", "{}")


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o027, 0o077])
def test_modes_follow_the_umask_set_after_import(tmp_path: Path, umask, mask: int) -> None:
    umask(mask)
    assert current_umask() == mask
    report = replace_directory(tmp_path / "report", _fill)
    folder, file = 0o777 & ~mask, 0o666 & ~mask
    assert _modes(report) == {"report": folder, "report/sub": folder, "report/sub/a.txt": file, "report/b.json": file}


def test_umask_without_proc_is_read_and_restored(umask, monkeypatch: pytest.MonkeyPatch) -> None:
    import finrl.fileio as fileio

    monkeypatch.setattr(fileio, "_PROC_STATUS", Path("/nonexistent/proc/self/status"))
    umask(0o027)
    assert current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # restored


def test_never_world_writable_even_under_umask_000(tmp_path: Path, umask) -> None:
    """model.zip is loaded with pickle: another local user able to write a bundle could run code."""
    umask(0o000)
    report = replace_directory(tmp_path / "report", _fill)
    assert _modes(report) == {"report": 0o775, "report/sub": 0o775, "report/sub/a.txt": 0o664, "report/b.json": 0o664}
