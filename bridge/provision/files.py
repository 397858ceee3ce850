"""The rendered files in Asterisk's config folder: written atomically, the previous version
kept (as `<name>.prev`, and in memory for a rollback).

Each file is written to a temporary file in the same folder, flushed to disk, and renamed
over the old one, so Asterisk (which may reload at any moment, or be restarted) reads the
old file or the new one, never half of one. A file the bridge replaces keeps its mode and
owner (the admin may have given it to Asterisk's group); a new one is 0640 in the folder's
group: it holds the phones' passwords. Asterisk re-reads an included file only when its
size or modification time changed: a file rewritten within the same clock tick gets a
later modification time, so a rollback is never mistaken for "unchanged".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

NEW_FILE_MODE = 0o640
EMPTY = "; nothing rendered yet (the previous version of this file did not exist)\n"


class ConfigDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self, name: str) -> str | None:
        try:
            return (self.path / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def changes(self, files: Mapping[str, str]) -> dict[str, str]:
        """The files whose text differs from what is on disk."""
        return {name: text for name, text in files.items() if self.read(name) != text}

    def write(self, files: Mapping[str, str]) -> dict[str, str | None]:
        """Write `files`; returns what each was before (None: it did not exist), for
        `restore`. Each previous version also stays on disk as `<name>.prev`."""
        previous: dict[str, str | None] = {}
        try:
            for name, text in files.items():
                old = self.read(name)
                if old is not None:
                    self._replace(name + ".prev", old)
                previous[name] = old
                self._replace(name, text)
        except OSError:
            self.restore(previous)
            raise
        return previous

    def restore(self, previous: Mapping[str, str | None]) -> None:
        """Put back what `write` returned (a file that did not exist comes back empty:
        Asterisk's #include of it must keep working)."""
        for name, old in previous.items():
            self._replace(name, EMPTY if old is None else old)

    def _replace(self, name: str, text: str) -> None:
        path = self.path / name
        try:
            before: os.stat_result | None = path.stat()
        except FileNotFoundError:
            before = None
        tmp = self.path / f".{name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, NEW_FILE_MODE)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            if before is not None:
                os.chmod(tmp, before.st_mode & 0o7777)
                owner = (before.st_uid, before.st_gid)
            else:
                owner = (-1, self.path.stat().st_gid)
            with contextlib.suppress(PermissionError):
                os.chown(tmp, *owner)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if before is not None and path.stat().st_mtime_ns <= before.st_mtime_ns:
            later = before.st_mtime_ns + 1_000_000_000
            os.utime(path, ns=(later, later))
        self._sync_folder()

    def _sync_folder(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
