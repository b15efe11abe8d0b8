"""Atomic file writes: a reader sees the old file or the complete new one, never half of one.

Every write here turns the operating system's refusals (permissions, a read-only or full file
system, a folder or file in the way, a missing parent, a name too long) into one
:class:`~finrl.errors.FileSystemError` line naming the path and what to do, and removes its
temporary file or staging folder first: a failed write leaves the old state, byte for byte.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from finrl.errors import FileSystemError
from finrl.log import get_logger

log = get_logger(__name__)

_UMASK_LOCK = threading.Lock()
_PROC_STATUS = Path("/proc/self/status")


def current_umask() -> int:
    """The process's umask now (it may change after import): Linux shows it in ``/proc/self/status``; elsewhere
    it is read by setting a restrictive one and restoring it, under a lock (a file made meanwhile by another
    thread is narrower than it would have been, never wider)."""
    with suppress(OSError, ValueError), _PROC_STATUS.open(encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def folder_mode() -> int:
    """What ``mkdir`` gives under the current umask (artifacts are shared with other readers: containers), but
    never writable by others, even under umask 000: a model is loaded with pickle, so whoever can write a bundle
    can run code as its reader."""
    return 0o777 & ~(current_umask() | 0o002)


def file_mode() -> int:
    """What ``open`` gives under the current umask, never writable by others (see :func:`folder_mode`)."""
    return 0o666 & ~(current_umask() | 0o002)


_CHOOSE = "or choose another folder"
_PROBLEMS: dict[int, tuple[str, str]] = {
    errno.EACCES: ("permission denied", f"give the user running spy-rl write access (owner, mode), {_CHOOSE}"),
    errno.EPERM: ("operation not permitted", f"give the user running spy-rl write access (owner, mode), {_CHOOSE}"),
    errno.EROFS: ("read-only file system", f"mount it writable, {_CHOOSE}"),
    errno.ENOSPC: ("no space left on device", f"free some space (old runs, checkpoints, logs), {_CHOOSE}"),
    errno.EDQUOT: ("disk quota exceeded", f"free some space (old runs, checkpoints, logs), {_CHOOSE}"),
    errno.EISDIR: ("a folder is where a file belongs", "move or remove that folder"),
    errno.ENOTDIR: ("a file is where a folder belongs", f"move or remove that file, {_CHOOSE}"),
    errno.EEXIST: ("something is in the way (a file where a folder belongs?)", f"move or remove it, {_CHOOSE}"),
    errno.ENOTEMPTY: ("a folder that is not empty is in the way", f"move or remove it, {_CHOOSE}"),
    errno.ENOENT: ("a parent folder is missing (removed meanwhile, or a dangling link)", f"create it, {_CHOOSE}"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter name or folder"),
    errno.ELOOP: ("too many levels of symbolic links", "fix the link"),
    errno.EIO: ("input/output error", "check the disk and its file system"),
    errno.EFBIG: ("file too large for the file system", f"use another file system, {_CHOOSE}"),
}


# the process's limits, not a path's: a fork out of memory, too many open files
_NOT_ABOUT_A_PATH = frozenset({errno.ENOMEM, errno.EMFILE, errno.ENFILE})
# a socket's or TLS's errors: an SSLError's errno 1 is not EPERM
_NETWORK_ERRORS = (ssl.SSLError, ConnectionError, TimeoutError, socket.gaierror, socket.herror)


def is_filesystem_error(exc: OSError) -> bool:
    """Whether ``exc`` is about a path (one the system names, or a file-system errno), not a socket, TLS or the
    process's own limits."""
    if isinstance(exc.errno, int) and exc.errno in _NOT_ABOUT_A_PATH:
        return False
    if exc.filename is not None:
        return True
    return not isinstance(exc, _NETWORK_ERRORS) and isinstance(exc.errno, int) and exc.errno in _PROBLEMS


def filesystem_error(exc: OSError, path: object = None, flag: str | None = None) -> FileSystemError:
    """``exc`` as one line: the path (``path``, else the one the system names) and what to do."""
    where = path if path is not None else (exc.filename if exc.filename is not None else "?")
    code = exc.errno if isinstance(exc.errno, int) else None
    problem, hint = _PROBLEMS.get(
        code or -1, (exc.strerror or type(exc).__name__, "check the path and its file system")
    )
    if flag and hint.endswith(_CHOOSE):
        hint = f"{hint} with {flag}"
    return FileSystemError(where, problem, hint, code)


@contextmanager
def filesystem_errors(path: object = None, *, flag: str | None = None, name_path: bool = False) -> Iterator[None]:
    """Within the block, an :class:`OSError` becomes a :class:`FileSystemError`. It names the path the system
    names (``path`` when it names none, or always with ``name_path``); ``flag`` is the option choosing the
    folder, added to the hint of one raised inside that lacks it."""
    try:
        yield
    except FileSystemError as exc:
        if flag and exc.hint.endswith(_CHOOSE) and _within(exc.path, path):
            raise FileSystemError(exc.path, exc.problem, f"{exc.hint} with {flag}", exc.errno) from exc
        raise
    except (ConnectionError, TimeoutError, BlockingIOError):
        raise  # the network's or a lock's, not the file system's
    except OSError as exc:
        if not is_filesystem_error(exc):
            raise  # a fork out of memory, too many open files, TLS: not about the path
        where = path if name_path or exc.filename is None else exc.filename
        raise filesystem_error(exc, where, flag if _within(where, path) else None) from exc


def _within(where: object, folder: object) -> bool:
    """Whether the path ``where`` is ``folder`` or inside it (any path is inside no ``folder``): a flag
    choosing ``folder`` is no help for a path elsewhere."""
    if folder is None:
        return True
    return Path(str(where)).absolute().is_relative_to(Path(str(folder)).absolute())


def remove_quietly(path: Path) -> None:
    """Remove a temporary file or staging folder; on a file system that refuses even that, leave it."""
    path = Path(path)
    with suppress(OSError):  # a name too long, a read-only file system: nothing to remove, or nothing removable
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def share_tree(root: Path) -> None:
    """Folders ``0o777 & ~(umask | 0o002)`` and files ``0o666 & ~(umask | 0o002)`` (as ``mkdir`` and ``open``
    make them, never world-writable), for
    folders made private by ``mkdtemp`` or files by ``mkstemp``: a container running as another user of the
    group can read the artifacts."""
    root = Path(root)
    folders, files = folder_mode(), file_mode()
    root.chmod(folders)
    for path in root.rglob("*"):
        if not path.is_symlink():
            path.chmod(folders if path.is_dir() else files)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only on success. On failure the
    temporary file and the folders made for it are removed."""
    target = Path(target)
    made = missing_folders(target.parent)
    with filesystem_errors(target, name_path=True):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            tmp = Path(tmp_name)
            try:
                os.close(fd)
                tmp.chmod(file_mode())  # mkstemp makes 0600
                yield tmp
                _fsync_file(tmp)
                tmp.replace(target)
                fsync_dir(target.parent)
            finally:
                remove_quietly(tmp)
        except BaseException:
            remove_empty_folders(made)
            raise


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first: what a ``mkdir -p`` would make."""
    missing = []
    folder = Path(folder).absolute()
    while not _exists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _exists(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except OSError:  # a name too long, a folder it may not enter: mkdir will say so
        return False


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) where empty: undo a ``mkdir -p`` of a failed write."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def atomic_write(target: Path, write: Callable[[IO[Any]], object], *, binary: bool = False) -> None:
    with (
        atomic_path(target) as tmp,
        tmp.open("wb" if binary else "w", encoding=None if binary else "utf-8") as f,
    ):
        write(f)


def atomic_write_text(target: Path, text: str) -> None:
    atomic_write(target, lambda f: f.write(text))


def atomic_write_json(target: Path, data: Any) -> None:
    atomic_write_text(target, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not every platform can open a directory
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_directory(directory: Path, fill: Callable[[Path], object]) -> Path:
    """Build a folder aside with ``fill(staging)``, fsync its files, then swap it in whole.

    Readers see the old folder or the new one, never a mix; a failure anywhere (in ``fill``, a full
    disk, a refused rename) leaves the old folder as it was and removes the staging folder. An old folder
    that could not be put back after a failed swap stays in ``.retired-<name>`` (logged); the next call puts
    it back first, never removes it unseen.
    """
    directory = Path(directory)
    staging = directory.with_name(f".staging-{directory.name}")
    retired = directory.with_name(f".retired-{directory.name}")
    made = missing_folders(directory.parent)
    with filesystem_errors(directory, name_path=True):
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            _restore_retired(directory, retired)
            remove_quietly(staging)  # a killed run's
            staging.mkdir()
        except BaseException:
            remove_empty_folders(made)
            raise
        try:
            fill(staging)
            share_tree(staging)
            for path in staging.rglob("*"):
                if path.is_file():
                    _fsync_file(path)
            remove_quietly(retired)
            had_old = directory.exists() or directory.is_symlink()
            if had_old:
                _retire(directory, retired)
            try:
                staging.rename(directory)
            except BaseException:
                if had_old:
                    _put_back(directory, retired)
                raise
        except BaseException:
            remove_quietly(staging)
            remove_empty_folders(made)
            raise
        fsync_dir(directory.parent)
        remove_quietly(retired)
    return directory


def _restore_retired(directory: Path, retired: Path) -> None:
    """A ``.retired-<name>`` without ``<name>``: the only copy of the old folder, left by a swap whose undo
    failed. Put it back (the new folder replaces it only when complete); where that fails, refuse."""
    if not _exists(retired) or _exists(directory):
        return
    log.warning("restoring_retired_folder", path=str(directory), retired=str(retired))
    try:
        retired.rename(directory)
    except OSError as exc:
        raise FileSystemError(
            retired, f"holds the only copy of {directory.name} and cannot be put back ({exc.strerror})",
            f"move it to {directory} yourself",
            exc.errno,
        ) from exc  # fmt: skip


def _retire(directory: Path, retired: Path) -> None:
    """Move the old folder aside; a ``.retired-`` folder that could not be removed is named, not the old one."""
    try:
        directory.rename(retired)
    except OSError as exc:
        if not _exists(retired):
            raise
        raise FileSystemError(
            retired,
            "an earlier run's retired folder cannot be removed",
            f"remove it ({directory} is intact and in use)",
            exc.errno,
        ) from exc


def _put_back(directory: Path, retired: Path) -> None:
    """Undo :func:`_retire` after a failed swap; where that fails too, say where the old folder is."""
    try:
        retired.rename(directory)
    except OSError as exc:
        log.warning(
            "old_folder_left_aside", path=str(directory), left_in=str(retired), error=exc.strerror,
            hint=f"move {retired} back to {directory}; the next write puts it back first",
        )  # fmt: skip
