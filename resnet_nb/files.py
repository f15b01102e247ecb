"""The files the course writes and reads back: safe to kill, to share and to run twice.

* `atomic_write`: a file is written beside its place and renamed into it, so a kill at
  any moment leaves the old file or the new one, never half of one. New files get the
  usual mode for new files (0644 under the common umask 022), not the private 0600 of
  temporary files: a data cache or a run that a teacher makes is read by the class.
* `remove_leftovers`: temporary files of writers that were killed (kill -9, a power cut)
  are removed; a temporary file that another process is still writing is left alone.
* `FolderLock`: one process at a time writes a run folder; a second one is refused with
  a line naming the first one's process id.
* `check_writable`: the places a run will write are tried before the work starts.

(A group of writes that must not be cut by Ctrl-C uses signals.signals_deferred.)

Locks use `fcntl.flock` (Linux, macOS); where it does not exist they are skipped.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

try:
    import fcntl
except ImportError:   # Windows: no advisory locks; the atomic renames still hold
    fcntl = None

#: Every temporary file the project writes starts with this, so leftovers can be found.
TEMP_PREFIX = ".tmp-"
#: A temporary file untouched for this long, and locked by nobody, is a killed writer's.
LEFTOVER_AGE_S = 60.0


class FolderBusy(RuntimeError):
    """Another process is writing the same folder. The message names it and says what to do."""


class NotWritable(OSError):
    """A folder the work will write to cannot be written. The message names it and why."""


def show_path(path: str | os.PathLike) -> str:
    """A path as it may be printed in a notebook: relative to the working folder where it
    lies below it, else its last two parts (no absolute path of this machine)."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return f".../{path.parent.name}/{path.name}" if path.parent.name else path.name


def reason(e: BaseException) -> str:
    """An exception as a short reason for a one-line message: its type and first line."""
    text = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    text = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def new_file_mode() -> int:
    """The mode `open()` would give a new file: 0o666 without the bits of the umask."""
    try:   # Linux: read the umask without changing it (changing it races with other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def os_error_in(e: BaseException) -> OSError | None:
    """`e` if it is an OSError, else the first OSError it was raised from or while handling
    (`__cause__`, `__context__`), else None."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on `fd` without waiting; True if taken (or no locks here)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(f)` on a temporary file beside `path`, then rename it to `path`.

    The temporary file is locked while it is written, which tells `remove_leftovers` that
    its writer is alive. On any error (a full disk, an interrupt) it is removed and `path`
    keeps its previous content. An OSError of the file (ENOSPC: a full disk) comes out as
    that OSError even where `write` wrapped it in another exception: torch.save turns it
    into `RuntimeError: [enforce fail at inline_container.cc] unexpected pos ...`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.")
    try:
        _try_lock(fd)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
                os.chmod(tmp, new_file_mode())
        except Exception as e:
            cause = os_error_in(e)
            if cause is None or cause is e:
                raise
            raise cause from None
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def locked_temp_dir(folder: str | os.PathLike, what: str = "dir") -> Iterator[Path]:
    """A temporary folder inside `folder`, locked while in use and removed afterwards.

    For work that fills a folder before renaming a part of it into place (a download).
    """
    tmp = tempfile.mkdtemp(dir=folder, prefix=f"{TEMP_PREFIX}{what}.")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        _try_lock(fd)
        yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(fd)


def remove_leftovers(folder: str | os.PathLike, *, min_age_s: float = LEFTOVER_AGE_S,
                     also: tuple[str, ...] = ()) -> list[str]:
    """Remove temporary files and folders in `folder` left by killed writers; return their names.

    An entry counts as left over when its name starts with TEMP_PREFIX (or one of `also`),
    it has not changed for `min_age_s` seconds and nobody holds its lock. What cannot be
    removed (another user's, a read-only folder) is left as it is.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith((TEMP_PREFIX, *also)):
            continue
        try:
            if entry.is_symlink() or now - entry.stat().st_mtime < min_age_s:
                continue
            fd = os.open(entry.path, os.O_RDONLY)
            try:
                if not _try_lock(fd):
                    continue      # its writer is alive
                if entry.is_dir():
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(entry.name)
            finally:
                os.close(fd)
        except OSError:
            continue
    return removed


def check_writable(folder: str | os.PathLike, what: str) -> Path:
    """Create `folder` if needed and write a test file there, before any work is done.

    Raises NotWritable, one line naming `what`, the folder and the reason, if that fails.
    """
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotWritable(f"{what} {show_path(folder)} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f"{TEMP_PREFIX}probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise NotWritable(f"cannot write {what} {show_path(folder)}/ "
                          f"({e.strerror or e})") from None
    return folder


class FolderLock:
    """An exclusive lock on a folder (its `.lock` file), held by one process at a time.

    The operating system drops the lock when its process ends, even by kill -9, so a
    lock is never left behind. `acquire` raises FolderBusy when another process holds it.
    """

    NAME = ".lock"

    def __init__(self, folder: str | os.PathLike, what: str = "folder"):
        self.folder, self.what = Path(folder), what
        self._file = None

    def acquire(self) -> "FolderLock":
        if fcntl is None or self._file is not None:
            return self
        f = open(self.folder / self.NAME, "a+")
        if not _try_lock(f.fileno()):
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise FolderBusy(f"another process (pid {holder}) is writing {self.what} "
                             f"{show_path(self.folder)}/ right now: wait until it ends, or "
                             "choose another folder")
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()   # closing drops the lock
            self._file = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

