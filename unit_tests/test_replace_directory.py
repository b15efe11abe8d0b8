"""replace_directory when its ``.retired-`` folder is in the way or the old folder cannot be put back."""

from pathlib import Path

import pytest
from structlog.testing import capture_logs

import finrl.fileio as fileio
from finrl.errors import FileSystemError
from finrl.fileio import replace_directory


def _report(text: str):  # type: ignore[no-untyped-def]
    return lambda staging: (staging / "summary.txt").write_text(text)


def test_a_retired_folder_that_cannot_be_removed_is_named_not_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = replace_directory(tmp_path / "report", _report("old"))
    retired = tmp_path / ".retired-report"
    retired.mkdir()
    (retired / "stuck").write_text("x")
    remove = fileio.remove_quietly
    monkeypatch.setattr(fileio, "remove_quietly", lambda path: None if Path(path) == retired else remove(path))
    with pytest.raises(FileSystemError) as caught:
        replace_directory(report, _report("new"))
    assert caught.value.path == str(retired)  # not the good report: the user must not delete that one
    assert "intact" in str(caught.value)
    assert (report / "summary.txt").read_text() == "old"
    assert not (tmp_path / ".staging-report").exists()


def test_an_old_report_that_cannot_be_put_back_is_logged_and_restored_by_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = replace_directory(tmp_path / "report", _report("old"))
    retired = tmp_path / ".retired-report"
    rename = Path.rename

    def refuse_into_report(self: Path, target: Path) -> Path:
        if Path(target) == report and self != report:
            raise PermissionError(13, "Permission denied")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", refuse_into_report)
    with capture_logs() as logs, pytest.raises(FileSystemError):
        replace_directory(report, _report("new"))
    monkeypatch.undo()
    assert (retired / "summary.txt").read_text() == "old"
    (left,) = [entry for entry in logs if entry["log_level"] == "warning"]
    assert left["left_in"] == str(retired)

    def fail(staging: Path) -> None:
        raise RuntimeError("fill failed")

    with capture_logs() as logs, pytest.raises(RuntimeError):
        replace_directory(report, fail)
    assert (report / "summary.txt").read_text() == "old"  # put back, not removed unseen
    assert [entry["retired"] for entry in logs if entry["log_level"] == "warning"] == [str(retired)]
    assert replace_directory(report, _report("new")) == report
    assert (report / "summary.txt").read_text() == "new"
    assert not retired.exists()
