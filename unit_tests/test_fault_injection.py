"""Fault injection: the operating system refuses a write (a read-only or full file system, permission denied, a
folder or file in the way, a missing parent, a name too long), ``latest`` is a real folder, or an earlier run
left corrupt or partial files, while ``spy-rl`` trains, backtests, fetches data, paper trades or combines
bundles.

Each case asserts the exit code, at most one ``error:`` line on stderr (exactly one on failure), no traceback
(CliRunner keeps an escaped exception in ``result.exception``: none may escape), every file present before the
command byte-identical afterwards and no staging folder or temporary file left behind.

Read-only and full file systems are real where the tests run as root and may mount: a small tmpfs over the
folder (remounted read-only, or filled to leave a given number of bytes). Elsewhere, or with
``FINRL_FAULTS_SIMULATE=1``, the same code paths see the same ``OSError`` from patched ``open``/``os.open``/
``mkdir``/``rename``/``replace``/``symlink`` for paths under the folder. Permission denied is real (chmod) for
other users and simulated for root, which chmod does not stop. Each case records which way it ran in its
report (``record_property("filesystem", ...)``).
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import uuid
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from finrl.agents.bundle import MANIFEST_FILE, POLICY_FILE, point_latest
from finrl.applications.spy_rl_trading.cli import app
from unit_tests.conftest import TINY_TRAINING

pytestmark = pytest.mark.integration
runner = CliRunner()

SIMULATE = os.environ.get("FINRL_FAULTS_SIMULATE") == "1"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


# ---------------------------------------------------------------- file systems that fail


@cache
def can_mount() -> bool:
    """Root with the right to mount a tmpfs (a container may lack it)."""
    if SIMULATE or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(f"/tmp/.finrl-mount-probe-{uuid.uuid4().hex}")
    probe.mkdir()
    try:
        if subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True
        ).returncode:
            return False
        subprocess.run(["umount", str(probe)], check=True, capture_output=True)
        return True
    finally:
        probe.rmdir()


def _under(path: Any, root: str) -> bool:
    if isinstance(path, int):
        return False
    try:
        text = str(Path(os.fsdecode(os.fspath(path))).absolute())
    except TypeError:
        return False
    return text == root or text.startswith(root + os.sep)


class Faults:
    """Makes folders fail; undone at teardown (mounts unmounted, modes restored, patches by monkeypatch)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, record: Callable[[str, object], None]) -> None:
        self.monkeypatch = monkeypatch
        self.record = record
        self.mounts: list[Path] = []
        self.chmodded: list[Path] = []
        self.refused: list[tuple[str, int, bool]] = []

    # real: tmpfs

    def _mount(self, folder: Path, size: int) -> None:
        saved = folder.with_name(f".{folder.name}.saved")
        if folder.exists():
            folder.rename(saved)
        folder.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)], check=True)
        self.mounts.append(folder)
        if saved.exists():
            shutil.copytree(saved, folder, symlinks=True, dirs_exist_ok=True)
            shutil.rmtree(saved)

    def read_only(self, folder: Path) -> str:
        if not can_mount():
            return self._refuse(folder, errno.EROFS)
        self._mount(folder, 32 << 20)  # room for a report kept there (report.html alone is ~5 MB)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        return self._ran("tmpfs (ro)")

    def full(self, folder: Path, free: int = 0) -> str:
        """No space left; ``free`` bytes left over where the tmpfs is real (a write fails partway through).
        Simulated: every file write under ``folder`` fails with ENOSPC, folders can still be made."""
        if not can_mount():
            return self._refuse(folder, errno.ENOSPC, folders=False)
        self._mount(folder, 32 << 20)
        filler = folder / ".filler"
        vfs = os.statvfs(folder)
        with filler.open("wb") as f:
            left = vfs.f_bavail * vfs.f_frsize - free
            block = b"\0" * (1 << 16)
            try:
                while left > 0:
                    f.write(block[: min(left, len(block))])
                    left -= len(block)
                f.flush()
            except OSError:
                pass
        return self._ran(f"tmpfs (full, {free} bytes free)")

    # real for other users, simulated for root

    def permission_denied(self, folder: Path) -> str:
        if os.geteuid() == 0 or SIMULATE:
            return self._refuse(folder, errno.EACCES)
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o555)
                self.chmodded.append(path)
        return self._ran("chmod 0555")

    # simulated: the same OSError from the calls the code makes

    def refuse(self, folder: Path, code: int, *, folders: bool = True, only: str | None = None) -> str:
        return self._refuse(folder, code, folders=folders, only=only)

    def _refuse(self, folder: Path, code: int, *, folders: bool = True, only: str | None = None) -> str:
        """Writes under ``folder`` fail with ``code``: opening a file to write (``only="open"``), making a
        folder (unless ``folders`` is false), renaming into or out of it (``only="rename"``), a symlink."""
        root = str(folder.absolute())
        mp = self.monkeypatch

        def fail(path: Any) -> None:
            raise OSError(code, os.strerror(code), os.fsdecode(os.fspath(path)))

        def wants(kind: str) -> bool:
            return only is None or only == kind

        real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
        real_replace, real_rename, real_symlink = os.replace, os.rename, os.symlink

        def room(path: Any, writes: bool) -> bool:
            """A full disk still opens an existing file where nothing is written (a lock file)."""
            return code == errno.ENOSPC and not writes and isinstance(path, (str, os.PathLike)) and Path(path).exists()

        def py_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            writes = any(c in mode for c in "wa")
            if wants("open") and any(c in mode for c in "wax+") and _under(file, root) and not room(file, writes):
                fail(file)
            return real_open(file, mode, *args, **kwargs)

        def os_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
            writes = bool(flags & (os.O_APPEND | os.O_TRUNC))
            if (
                wants("open")
                and dir_fd is None
                and flags & _WRITE_FLAGS
                and _under(path, root)
                and not room(path, writes)
            ):
                fail(path)
            return real_os_open(path, flags, mode, dir_fd=dir_fd)

        def mkdir(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
            if wants("open") and folders and dir_fd is None and _under(path, root):
                fail(path)
            real_mkdir(path, mode, dir_fd=dir_fd)

        def renamer(real: Callable[..., None]) -> Callable[..., None]:
            def rename(src: Any, dst: Any, **kwargs: Any) -> None:
                if wants("rename") and not kwargs and (_under(src, root) or _under(dst, root)):
                    fail(dst)
                real(src, dst, **kwargs)

            return rename

        def symlink(src: Any, dst: Any, target_is_directory: bool = False, **kwargs: Any) -> None:
            if wants("rename") and _under(dst, root):
                fail(dst)
            real_symlink(src, dst, target_is_directory, **kwargs)

        mp.setattr(builtins, "open", py_open)
        mp.setattr(io, "open", py_open)
        mp.setattr(os, "open", os_open)
        mp.setattr(os, "mkdir", mkdir)
        mp.setattr(os, "replace", renamer(real_replace))
        mp.setattr(os, "rename", renamer(real_rename))
        mp.setattr(os, "symlink", symlink)
        return self._ran(f"simulated {errno.errorcode[code]}")

    def _ran(self, how: str) -> str:
        self.record("filesystem", how)
        return how

    def undo(self) -> None:
        for path in self.chmodded:
            path.chmod(0o755)
        for folder in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch, record_property: Callable[[str, object], None]) -> Iterator[Faults]:
    made = Faults(monkeypatch, record_property)
    yield made
    monkeypatch.undo()
    made.undo()


# ---------------------------------------------------------------- a workspace as after `make run`


@pytest.fixture
def ws(sample_bundles: dict[str, Path], tmp_path: Path) -> Path:
    """``trained_models/{r1,r2,latest -> r1}``, the sample's ``datasets/`` cache, empty ``results/`` and ``logs/``
    (copies: read-only for nobody)."""
    models = tmp_path / "trained_models"
    models.mkdir()
    for name in ("r1", "r2"):
        shutil.copytree(sample_bundles[name], models / name)
    point_latest(models, models / "r1")
    shutil.copytree(sample_bundles["r1"].parent.parent / "datasets", tmp_path / "datasets")
    for name in ("results", "logs", "tensorboard"):
        (tmp_path / name).mkdir()
    return tmp_path


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root``: a file's SHA-256, a link's target, a folder."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = f"link -> {path.readlink()}"
        elif path.is_dir():
            out[key] = "dir"
        else:
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def leftovers(root: Path) -> list[str]:
    """Staging folders, retired folders and temporary files anywhere under ``root``."""
    return [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.name.startswith((".staging-", ".retired-", ".latest.")) or (p.name.startswith(".") and p.suffix == ".tmp")
    ]


def invoke(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def check(result: Result, code: int, *needles: str) -> str:
    """Exit ``code``; one ``error:`` line containing ``needles`` when failing, none on success; no traceback."""
    escaped = result.exception if not isinstance(result.exception, SystemExit) else None
    assert escaped is None, f"escaped {type(escaped).__name__}: {escaped}\n{result.output}"
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == code, result.output
    errors = error_lines(result)
    if code == 0:
        assert errors == [], errors
        return ""
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def unchanged(before: dict[str, dict[str, str]], *roots: Path) -> None:
    for root in roots:
        assert tree(root) == before[str(root)], f"{root} changed"
        assert leftovers(root) == [], leftovers(root)


def snapshot(*roots: Path) -> dict[str, dict[str, str]]:
    return {str(root): tree(root) for root in roots}


def train_args(ws: Path, run: str = "new", *extra: object) -> list[object]:
    return ["train", "--source", "sample", *TINY_TRAINING, "--run-name", run, "--models-dir", ws / "trained_models",
            "--datasets-dir", ws / "datasets", "--tensorboard-dir", ws / "tensorboard", *extra]  # fmt: skip


def backtest_args(ws: Path, *extra: object) -> list[object]:
    return ["backtest", "--models-dir", ws / "trained_models", "--datasets-dir", ws / "datasets",
            "--results-dir", ws / "results", *extra]  # fmt: skip


def fetch_args(ws: Path, *extra: object) -> list[object]:
    return ["data", "fetch", "--source", "sample", "--datasets-dir", ws / "datasets", *extra]


def paper_args(ws: Path, *extra: object) -> list[object]:
    return ["paper", "--once", "--live-source", "sample", "--broker", "simulated", "--dry-run",
            "--models-dir", ws / "trained_models", "--datasets-dir", ws / "datasets", "--logs-dir", ws / "logs",
            *extra]  # fmt: skip


LONG = "n" * 300  # longer than any file system's 255-byte name


# ---------------------------------------------------------------- train


@pytest.mark.parametrize("fault", ["read_only", "full", "permission_denied"])
def test_train_into_a_models_folder_that_refuses_writes(ws: Path, faults: Faults, fault: str) -> None:
    models = ws / "trained_models"
    getattr(faults, fault)(models)
    before = snapshot(models, ws / "datasets")
    line = check(invoke(*train_args(ws)), 1, str(models))
    assert "--models-dir" in line
    unchanged(before, models, ws / "datasets")


def test_train_on_a_disk_that_fills_up_while_saving_removes_its_staging(ws: Path, faults: Faults) -> None:
    models = ws / "trained_models"
    faults.full(models, free=200_000)  # the staging folder and the final model fit; the kept model does not
    before = snapshot(models, ws / "datasets")
    check(invoke(*train_args(ws)), 1, "no space left", "free some space")
    unchanged(before, models, ws / "datasets")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.ENOENT], ids=errno.errorcode.get)
def test_train_publish_refused_at_the_rename_keeps_latest(ws: Path, faults: Faults, code: int) -> None:
    """The manifest's and the bundle's renames fail (full, read-only, the folder removed meanwhile)."""
    models = ws / "trained_models"
    faults.refuse(models, code, only="rename")
    before = snapshot(models)
    check(invoke(*train_args(ws)), 1, str(models))
    unchanged(before, models)


def test_train_with_a_file_where_the_models_folder_belongs(ws: Path) -> None:
    shutil.rmtree(ws / "trained_models")
    (ws / "trained_models").write_text("not a folder\n")
    before = snapshot(ws)
    check(invoke(*train_args(ws)), 1, "trained_models", "move or remove")
    unchanged(before, ws)


def test_train_under_a_file_in_the_models_path(ws: Path) -> None:
    """The models folder's parent is a file (ENOTDIR)."""
    (ws / "blocker").write_text("x\n")
    before = snapshot(ws)
    check(invoke(*train_args(ws), "--models-dir", ws / "blocker" / "models"), 1, "blocker")
    unchanged(before, ws)


def test_train_with_a_run_name_too_long_for_the_file_system(ws: Path) -> None:
    before = snapshot(ws / "trained_models")
    check(invoke(*train_args(ws, LONG)), 1, "name too long")
    unchanged(before, ws / "trained_models")


def test_train_into_a_read_only_tensorboard_folder(ws: Path, faults: Faults) -> None:
    faults.read_only(ws / "tensorboard")
    before = snapshot(ws / "trained_models", ws / "tensorboard")
    check(invoke(*train_args(ws)), 1, "tensorboard", "read-only", "with --tensorboard-dir")
    unchanged(before, ws / "trained_models", ws / "tensorboard")


def test_train_refuses_a_latest_that_is_a_real_folder_before_training(ws: Path) -> None:
    models = ws / "trained_models"
    (models / "latest").unlink()
    shutil.copytree(models / "r1", models / "latest")  # synced without symlinks
    before = snapshot(models)
    line = check(invoke(*train_args(ws)), 1, str(models / "latest"), "not a symlink")
    assert "mv " in line
    unchanged(before, models)
    assert list((ws / "tensorboard").iterdir()) == []  # refused before training, not after


def test_train_keeps_its_bundle_when_latest_became_a_real_folder_during_training(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``latest`` was a link when training started and a folder (a sync) when it ended: the finished run is
    published all the same, ``latest`` is left alone and the line says so."""
    import finrl.agents.training as training

    models = ws / "trained_models"
    export = training.export_policy

    def sync_meanwhile(directory: Path) -> None:
        (models / "latest").unlink()
        shutil.copytree(models / "r1", models / "latest")
        export(directory)

    monkeypatch.setattr(training, "export_policy", sync_meanwhile)
    line = check(invoke(*train_args(ws)), 1, str(models / "latest"), "not a symlink", "complete", "latest")
    assert str(models / "new") in line
    assert (models / "new" / MANIFEST_FILE).is_file()
    assert (models / "latest").is_dir() and not (models / "latest").is_symlink()
    assert leftovers(models) == []


@pytest.mark.parametrize("kind", ["file", "dangling link"])
def test_train_replaces_a_latest_that_is_a_file_or_a_dangling_link(ws: Path, kind: str) -> None:
    models = ws / "trained_models"
    (models / "latest").unlink()
    if kind == "file":
        (models / "latest").write_text("r1\n")
    else:
        (models / "latest").symlink_to("gone")
    before = tree(models / "r1")
    check(invoke(*train_args(ws)), 0)
    assert (models / "latest").readlink() == Path("new")
    assert tree(models / "r1") == before and leftovers(models) == []


@pytest.mark.parametrize("cache", ["cached", "empty"])
def test_train_from_a_read_only_dataset_cache(ws: Path, faults: Faults, cache: str) -> None:
    """Compose mounts datasets read-only: reading works, and an uncached range only skips writing it."""
    datasets = ws / "datasets"
    if cache == "empty":
        shutil.rmtree(datasets)
        datasets.mkdir()
    faults.read_only(datasets)
    before = snapshot(datasets)
    check(invoke(*train_args(ws)), 0)
    unchanged(before, datasets)
    assert (ws / "trained_models" / "new" / MANIFEST_FILE).is_file()


def test_train_with_a_full_dataset_cache_skips_caching(ws: Path, faults: Faults) -> None:
    datasets = ws / "datasets"
    shutil.rmtree(datasets)
    faults.full(datasets)
    before = snapshot(datasets)
    check(invoke(*train_args(ws)), 0)
    unchanged(before, datasets)


def test_train_beside_a_killed_runs_leftovers(ws: Path) -> None:
    """A staging folder and a temporary manifest of an earlier killed run are not this run's: left alone."""
    models = ws / "trained_models"
    (models / ".staging-old-x1y2").mkdir()
    (models / ".staging-old-x1y2" / "final_model.zip").write_bytes(b"PK\x03\x04 half")
    (models / "r1" / ".bundle.json.abc.tmp").write_text("{")
    before = tree(models)
    check(invoke(*train_args(ws)), 0)
    after = tree(models)
    assert {k: v for k, v in after.items() if k in before and k != "latest"} == {
        k: v for k, v in before.items() if k != "latest"
    }
    assert not [k for k in after if k not in before and ".staging-" in k]


def test_published_bundles_and_reports_are_readable_by_the_group(ws: Path) -> None:
    """Under umask 022: folders 0755, files 0644 (mkdtemp's 0700 and mkstemp's 0600 widened), bundle and report."""
    old = os.umask(0o022)
    try:
        check(invoke(*train_args(ws)), 0)
        check(invoke(*backtest_args(ws, "--model", "new")), 0)
    finally:
        os.umask(old)
    (report,) = list((ws / "results").iterdir())
    for folder in (ws / "trained_models" / "new", report):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
        for path in folder.rglob("*"):
            assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path


# ---------------------------------------------------------------- backtest


@pytest.fixture
def reported(ws: Path) -> Path:
    """``ws`` with a backtest report of latest already in ``results/``."""
    check(invoke(*backtest_args(ws)), 0)
    return ws


@pytest.mark.parametrize("fault", ["read_only", "full", "permission_denied"])
def test_backtest_into_a_results_folder_that_refuses_writes(reported: Path, faults: Faults, fault: str) -> None:
    results = reported / "results"
    getattr(faults, fault)(results)
    before = snapshot(results, reported / "trained_models")
    check(invoke(*backtest_args(reported)), 1, str(results), "--results-dir")
    unchanged(before, results, reported / "trained_models")


def test_backtest_on_a_disk_that_fills_up_mid_report_keeps_the_old_report(reported: Path, faults: Faults) -> None:
    results = reported / "results"
    faults.full(results, free=40_000)  # the staging folder and the CSVs fit, the PNG does not
    before = snapshot(results)
    check(invoke(*backtest_args(reported)), 1, "no space left")
    unchanged(before, results)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES], ids=errno.errorcode.get)
def test_backtest_swap_refused_keeps_the_old_report(reported: Path, faults: Faults, code: int) -> None:
    results = reported / "results"
    faults.refuse(results, code, only="rename")
    before = snapshot(results)
    check(invoke(*backtest_args(reported)), 1, "--results-dir")
    unchanged(before, results)


def test_backtest_with_a_file_where_the_results_folder_belongs(ws: Path) -> None:
    shutil.rmtree(ws / "results")
    (ws / "results").write_text("x\n")
    before = snapshot(ws)
    check(invoke(*backtest_args(ws)), 1, "results", "--results-dir")
    unchanged(before, ws)


def test_backtest_into_a_results_path_with_a_name_too_long(ws: Path) -> None:
    before = snapshot(ws)
    check(invoke(*backtest_args(ws), "--results-dir", ws / LONG / "results"), 1, "name too long")
    unchanged(before, ws)


def test_backtest_into_a_missing_parent_through_a_dangling_link(ws: Path) -> None:
    (ws / "gone").symlink_to(ws / "nowhere")
    before = snapshot(ws)
    check(invoke(*backtest_args(ws), "--results-dir", ws / "gone" / "results"), 1, "gone")
    unchanged(before, ws)


@pytest.mark.parametrize("cache", ["cached", "empty"])
def test_backtest_from_read_only_models_and_datasets(ws: Path, faults: Faults, cache: str) -> None:
    """Compose's backtest mounts the models and datasets read-only."""
    if cache == "empty":
        shutil.rmtree(ws / "datasets")
        (ws / "datasets").mkdir()
    faults.read_only(ws / "datasets")
    before = snapshot(ws / "datasets", ws / "trained_models")
    check(invoke(*backtest_args(ws)), 0)
    unchanged(before, ws / "datasets", ws / "trained_models")
    assert [p.name for p in (ws / "results").iterdir()]


def test_backtest_through_a_latest_that_is_a_real_folder(ws: Path) -> None:
    models = ws / "trained_models"
    (models / "latest").unlink()
    shutil.copytree(models / "r1", models / "latest")
    before = snapshot(models)
    check(invoke(*backtest_args(ws)), 0)
    unchanged(before, models)


def test_backtest_over_a_killed_backtests_leftovers(reported: Path) -> None:
    results = reported / "results"
    (report,) = list(results.iterdir())
    for prefix in (".staging-", ".retired-"):
        (results / f"{prefix}{report.name}").mkdir()
        (results / f"{prefix}{report.name}" / "nav.csv").write_text("date,price\n2018-01")
    check(invoke(*backtest_args(reported)), 0)
    assert leftovers(results) == [] and sorted(p.name for p in results.iterdir()) == [report.name]


def test_backtest_summary_where_a_folder_is_in_the_way(ws: Path) -> None:
    """Two seeds: the reports are written, then the summary's file is a folder (EISDIR)."""
    results = ws / "results"
    check(invoke(*backtest_args(ws, "--model", "r1", "--model", "r2")), 0)
    (summary,) = [p for p in results.iterdir() if p.name.startswith("multi-")]
    (summary / "summary.json").unlink()
    (summary / "summary.json").mkdir()
    before = snapshot(results)
    check(invoke(*backtest_args(ws, "--model", "r1", "--model", "r2")), 1, "summary.json", "folder")
    after = tree(results)
    assert after[str(summary.relative_to(results) / "summary.json")] == "dir" and leftovers(results) == []
    assert set(after) == set(before[str(results)])


@pytest.mark.parametrize("damage", ["truncated policy", "missing manifest", "torn manifest"])
def test_backtest_of_a_bundle_an_earlier_run_left_damaged(ws: Path, damage: str) -> None:
    bundle = ws / "trained_models" / "r1"
    if damage == "truncated policy":
        (bundle / POLICY_FILE).write_bytes((bundle / POLICY_FILE).read_bytes()[:100])
    elif damage == "missing manifest":
        (bundle / MANIFEST_FILE).unlink()
    else:
        (bundle / MANIFEST_FILE).write_text((bundle / MANIFEST_FILE).read_text()[:200])
    before = snapshot(ws)
    check(invoke(*backtest_args(ws, "--model", "r1")), 1, "r1")
    unchanged(before, ws)


# ---------------------------------------------------------------- data fetch


@pytest.mark.parametrize("fault", ["read_only", "full", "permission_denied"])
def test_fetch_into_a_datasets_folder_that_refuses_writes(ws: Path, faults: Faults, fault: str) -> None:
    datasets = ws / "datasets"
    getattr(faults, fault)(datasets)
    before = snapshot(datasets)
    result = invoke(*fetch_args(ws))
    check(result, 1, str(datasets))
    assert "--datasets-dir" in result.stderr  # the hint names the flag that chooses the folder
    unchanged(before, datasets)


def test_fetch_into_an_empty_full_datasets_folder_leaves_no_folder(ws: Path, faults: Faults) -> None:
    datasets = ws / "datasets"
    shutil.rmtree(datasets)
    faults.full(datasets)
    before = snapshot(datasets)
    check(invoke(*fetch_args(ws)), 1, "no space left")
    unchanged(before, datasets)


def test_fetch_where_a_folder_is_in_the_way_of_the_features_file(ws: Path) -> None:
    (cache_dir,) = list((ws / "datasets").iterdir())
    for name in ("features.json", "features.csv"):  # cached by the runs that made the workspace
        (cache_dir / name).unlink(missing_ok=True)
    (cache_dir / "features.csv").mkdir()
    before = snapshot(ws)
    check(invoke(*fetch_args(ws)), 1, "features.csv", "folder")
    unchanged(before, ws)


def test_fetch_into_a_datasets_path_with_a_name_too_long(ws: Path) -> None:
    before = snapshot(ws)
    check(invoke(*fetch_args(ws), "--datasets-dir", ws / LONG), 1, "name too long")
    unchanged(before, ws)


def test_fetch_with_a_file_where_the_datasets_folder_belongs(ws: Path) -> None:
    (ws / "plain").write_text("x\n")
    before = snapshot(ws)
    check(invoke(*fetch_args(ws), "--datasets-dir", ws / "plain"), 1, "plain")
    unchanged(before, ws)


@pytest.mark.parametrize("damage", ["truncated bars", "bars without metadata", "stale temp file"])
def test_fetch_over_a_cache_an_earlier_run_left_damaged(ws: Path, damage: str) -> None:
    (cache_dir,) = list((ws / "datasets").iterdir())
    good = (cache_dir / "bars.csv").read_bytes()
    if damage == "truncated bars":
        (cache_dir / "bars.csv").write_bytes(good[: len(good) // 2])
    elif damage == "bars without metadata":
        (cache_dir / "metadata.json").unlink()
    else:
        (cache_dir / ".bars.csv.k3j2.tmp").write_bytes(good[:500])
    check(invoke(*fetch_args(ws)), 0)
    assert (cache_dir / "bars.csv").read_bytes() == good
    assert json.loads((cache_dir / "metadata.json").read_text())["rows"] > 0


# ---------------------------------------------------------------- paper --once


@pytest.mark.parametrize("folder", ["datasets", "trained_models"])
def test_paper_once_from_read_only_models_and_datasets(ws: Path, faults: Faults, folder: str) -> None:
    faults.read_only(ws / folder)
    before = snapshot(ws / folder)
    check(invoke(*paper_args(ws)), 0)
    unchanged(before, ws / folder)


def test_paper_once_with_a_damaged_model(ws: Path) -> None:
    bundle = ws / "trained_models" / "r1"
    (bundle / POLICY_FILE).write_bytes(b"garbage")
    before = snapshot(ws / "trained_models")
    check(invoke(*paper_args(ws)), 1, "r1")
    unchanged(before, ws / "trained_models")


@pytest.mark.parametrize("fault", ["read_only", "full"])
def test_paper_once_with_a_state_folder_that_refuses_writes(ws: Path, faults: Faults, fault: str) -> None:
    logs = ws / "logs"
    check(invoke(*paper_args(ws)), 0)  # an earlier cycle's state and journal
    getattr(faults, fault)(logs)
    before = snapshot(logs)
    check(invoke(*paper_args(ws)), 1, str(logs))
    unchanged(before, logs)


# ---------------------------------------------------------------- runs convert, ensemble


@pytest.fixture
def old_bundle(ws: Path) -> Path:
    """r1 as written before policy.npz existed."""
    bundle = ws / "trained_models" / "r1"
    (bundle / POLICY_FILE).unlink()
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    del manifest["files"][POLICY_FILE]
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return bundle


@pytest.mark.parametrize("fault", ["read_only", "full"])
def test_runs_convert_in_a_models_folder_that_refuses_writes(old_bundle: Path, faults: Faults, fault: str) -> None:
    models = old_bundle.parent
    getattr(faults, fault)(models)
    before = snapshot(models)
    check(invoke("runs", "convert", "r1", "--models-dir", models), 1, str(models))
    unchanged(before, models)


def test_runs_convert_with_a_manifest_write_refused_removes_the_new_policy(old_bundle: Path, faults: Faults) -> None:
    models = old_bundle.parent
    faults.refuse(old_bundle, errno.ENOSPC, only="rename")
    before = snapshot(models)
    check(invoke("runs", "convert", "r1", "--models-dir", models), 1, "no space left")
    unchanged(before, models)


def ensemble_args(ws: Path, *extra: object) -> list[object]:
    return ["ensemble", "--model", "r1", "--model", "r2", "--rule", "mean_weight",
            "--models-dir", ws / "trained_models", *extra]  # fmt: skip


@pytest.mark.parametrize("fault", ["read_only", "permission_denied"])
def test_ensemble_into_a_models_folder_that_refuses_writes(ws: Path, faults: Faults, fault: str) -> None:
    models = ws / "trained_models"
    getattr(faults, fault)(models)
    before = snapshot(models)
    check(invoke(*ensemble_args(ws)), 1, str(models), "--models-dir")
    unchanged(before, models)


def test_ensemble_on_a_full_disk(ws: Path, faults: Faults) -> None:
    models = ws / "trained_models"
    faults.full(models, free=100_000)
    before = snapshot(models)
    check(invoke(*ensemble_args(ws)), 1, "no space left")
    unchanged(before, models)


def test_ensemble_with_a_name_too_long(ws: Path) -> None:
    before = snapshot(ws / "trained_models")
    check(invoke(*ensemble_args(ws, "--name", LONG)), 1, "name too long")
    unchanged(before, ws / "trained_models")


@pytest.mark.parametrize(
    ("error", "about_a_path"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (PermissionError(errno.EACCES, "Permission denied", "/x"), True),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), False),  # a socket, not a path
        (TimeoutError("timed out"), False),
        (OSError(errno.ENOMEM, "Cannot allocate memory"), False),  # a fork's, not the models folder's
        (OSError(errno.EMFILE, "Too many open files"), False),
        (OSError(errno.EMFILE, "Too many open files", "/x/model.zip"), False),  # the process's limit, not the file
        (ssl.SSLError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), False),  # errno 1 = EPERM
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), False),
        (OSError(errno.EIO, "Input/output error"), True),
    ],
    ids=[
        "ENOSPC",
        "EACCES-path",
        "ECONNREFUSED",
        "timeout",
        "ENOMEM",
        "EMFILE",
        "EMFILE-path",
        "ssl",
        "gaierror",
        "EIO",
    ],
)
def test_only_path_errors_become_file_system_lines(error: OSError, about_a_path: bool) -> None:
    """cli_support.user_errors renders an OSError as a file-system line only when it is about a path;
    a network error (an OSError too) or the process's own limit stays what it is, inside a write's
    ``filesystem_errors`` block too."""
    from finrl.errors import FileSystemError
    from finrl.fileio import filesystem_errors, is_filesystem_error

    assert is_filesystem_error(error) is about_a_path
    with pytest.raises(FileSystemError if about_a_path else type(error)), filesystem_errors("/x", flag="--models-dir"):
        raise error
