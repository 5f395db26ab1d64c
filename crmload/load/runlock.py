"""One run per journal: an exclusive OS file lock on ``JOURNAL.lock``, held from open to close.

Two runs on one journal each believe they own its pending rows, so every unkeyed row would be sent twice
(issue 16 #1). The lock is an OS lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows), not a PID file:
the kernel drops it when its holder dies, SIGKILL included, so a crashed run never blocks the next one.
The file's text (pid, host, start time, command) is only information for the refusal message; the OS lock
is the truth.

The file is removed on release. That opens a classic race (a waiter may lock the inode that is being
unlinked), closed by checking after locking that the path still names the inode we hold.

Why not ``filelock``: it does the same two system calls, but it does not let the holder write who it is
into the file, and it leaves the inode race to the caller. Locks on network filesystems (NFS, SMB) are only
as good as the server's lock manager.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

from crmload.errors import JournalBusyError, JournalError

__all__ = ["RunLock", "lock_path"]

_INFO_WAIT_S = 3.0  # a winner writes its details right after locking; give a loser that long to see them
_WIN_LOCK_OFFSET = 1 << 30  # Windows locks bytes: lock one far past the text so others can still read it


def lock_path(journal: str | os.PathLike[str]) -> Path:
    """The lock file of ``journal``: ``JOURNAL.lock`` beside it."""
    return Path(f"{os.fspath(journal)}.lock")


def _public_argv() -> str:
    """The command line, without credentials a URL might carry (the file is readable by its owner)."""
    from crmload.load.journal import public_url  # noqa: PLC0415 - journal imports this module

    words = [public_url(a) if "://" in a else a for a in sys.argv]
    if words and words[0].endswith("__main__.py"):
        words[0] = "crmload"
    return " ".join(words)[:500]


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class RunLock:
    """The exclusive lock of one journal. ``RunLock.acquire(journal)`` or raise ``JournalBusyError``.

    Example::

        >>> lock = RunLock.acquire("/tmp/run.sqlite")            # doctest: +SKIP
        >>> lock.release()                                       # doctest: +SKIP
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, journal: str | os.PathLike[str]) -> RunLock:
        """Lock ``journal`` for this process, or raise ``JournalBusyError`` naming the holder."""
        path = lock_path(journal)
        for _ in range(10):  # each turn loses only to a holder that released and unlinked meanwhile
            fd = _open(path, journal)
            if not _try_lock(fd):
                os.close(fd)
                raise _busy(path, journal)
            if _same_file(fd, path):
                lock = cls(path, fd)
                lock._write_info()
                return lock
            os.close(fd)
        raise JournalError(f"cannot lock journal {journal}: its lock file {path} keeps being replaced")

    @property
    def held(self) -> bool:
        """True until ``release``."""
        return self._fd is not None

    def _write_info(self) -> None:
        assert self._fd is not None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": _public_argv(),
        }
        # Information only: a full disk here must not stop the run, the lock itself is already held.
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
            os.write(self._fd, (json.dumps(info) + "\n").encode())

    def release(self) -> None:
        """Remove the lock file and drop the lock; idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # Unlink while still holding it (see the module docstring); Windows refuses to unlink an open file.
        with contextlib.suppress(OSError):
            if sys.platform != "win32":
                os.unlink(self.path)
        try:
            with contextlib.suppress(OSError):
                _unlock(fd)
        finally:
            os.close(fd)
        if sys.platform == "win32":  # pragma: no cover
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def __del__(self) -> None:
        # A Loader dropped without close() must not keep its journal locked for the rest of the process.
        with contextlib.suppress(Exception):
            self.release()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunLock({str(self.path)!r}, held={self.held})"


def _open(path: Path, journal: str | os.PathLike[str]) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise JournalError(
            f"cannot create the lock file of journal {journal} ({path}): {exc.strerror or exc}; "
            "the journal's directory must be writable (or choose another with --journal)"
        ) from exc


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def read_info(path: Path) -> dict[str, object]:
    """The holder's details from a lock file, or ``{}`` when there are none (yet)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _dead_here(info: dict[str, object]) -> bool:
    """True when the details name a process of this host that no longer runs (POSIX; elsewhere never)."""
    pid = info.get("pid")
    if os.name != "posix" or not isinstance(pid, int) or info.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _busy(path: Path, journal: str | os.PathLike[str]) -> JournalBusyError:
    deadline = time.monotonic() + _INFO_WAIT_S
    info = read_info(path)
    # The text may still be a killed holder's: the new holder locks first and writes its details just after.
    while (not info or _dead_here(info)) and time.monotonic() < deadline:
        time.sleep(0.02)
        info = read_info(path)
    pid = info.get("pid")
    who = (
        f"pid {pid} on {info.get('host', '?')}, started {info.get('started', '?')}"
        f" ({info.get('command', '?')})"
        if info
        else "another process (it has not written its details)"
    )
    return JournalBusyError(
        f"journal {journal} is in use by another run: {who}; two runs on one journal would send rows "
        "twice. Wait for it to end, or stop it: its lock goes with its process",
        pid=pid if isinstance(pid, int) else None,
        host=str(info["host"]) if "host" in info else None,
    )
