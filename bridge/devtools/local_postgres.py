"""A throw-away PostgreSQL cluster for tests and ``crm-bridge demo``.

Why: the bridge's durability guarantees (outbox, dedup, crash recovery) can only be
tested against a real server; this starts a private one in a directory in ~1-2 s,
with no system service, and can crash it on purpose (``kill``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

__all__ = ["LocalPostgres", "LocalPostgresError", "find_pg_bin_dir"]

_CONF_FILE = "local_postgres.conf"


class LocalPostgresError(RuntimeError):
    """Postgres could not be found, initialised, started or stopped."""


def find_pg_bin_dir() -> Path:
    """Directory of ``pg_ctl``/``initdb``: from PATH, else newest /usr/lib/postgresql/*/bin."""
    pg_ctl, initdb = shutil.which("pg_ctl"), shutil.which("initdb")
    if pg_ctl and initdb:
        return Path(pg_ctl).resolve().parent  # resolve: Debian symlinks into the versioned dir
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").exists()]

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.parent.name)) or (0,)

    if not candidates:
        raise LocalPostgresError(
            "PostgreSQL server binaries not found: no pg_ctl/initdb on PATH and no "
            "/usr/lib/postgresql/*/bin (install e.g. the 'postgresql' package)"
        )
    return max(candidates, key=version)


def _free_port() -> int:
    """A free port below the kernel's ephemeral range (ip_local_port_range).

    A port the kernel hands out for `bind(0)` could be taken by any other server of the
    machine while this cluster is down (a restart, an outage test), and the cluster would
    come back on another port than its DSN's; nothing takes these unasked. A machine whose
    ephemeral range leaves no room gets one the kernel hands out.
    """
    low, high = _ephemeral_range()
    first, end = (20000, low) if low > 21000 else (high + 1, 65536)
    for _ in range(200 if end - first >= 1000 else 0):
        port = first + secrets.randbelow(end - first)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (PID 1 here may never reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    except OSError:
        return True


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


class LocalPostgres:
    """A private cluster in ``base_dir`` (a fresh /tmp dir by default), trust auth, 127.0.0.1.

    As root, initdb/pg_ctl run as the ``postgres`` user (initdb refuses root) and the
    directory is chowned to it. ``durable=False`` turns off fsync & co. for speed.
    """

    def __init__(
        self,
        base_dir: str | Path | None = None,
        *,
        durable: bool = False,
        port: int | None = None,
        bin_dir: str | Path | None = None,
        max_connections: int = 200,
    ) -> None:
        self.bin_dir = Path(bin_dir) if bin_dir else find_pg_bin_dir()
        self.durable = durable
        self.max_connections = max_connections
        self._fixed_port = port
        self.port = port or 0
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="crm-bridge-pg-")).absolute()
        self.data_dir = self.base_dir / "data"
        self.log_file = self.base_dir / "postgres.log"
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam("postgres")
            except KeyError as e:
                raise LocalPostgresError(
                    "running as root but there is no 'postgres' system user to run initdb as"
                ) from e

    # -- public API --------------------------------------------------------------------
    @property
    def dsn(self) -> str:
        """DSN of the ``postgres`` database (superuser ``postgres``, no password)."""
        return self.dsn_for("postgres")

    def dsn_for(self, dbname: str) -> str:
        if not self.port:
            raise LocalPostgresError("LocalPostgres is not started")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def start(self) -> LocalPostgres:
        """initdb if needed, then start and wait until it accepts connections.

        A server already running on this directory (e.g. left by a crashed demo) is
        adopted as is: its port is read from postmaster.pid.
        """
        self._prepare_dir()
        if self.is_running():
            self.port = int(self._pid_file_lines()[3])
            return self
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        for attempt in range(3):
            if not self._fixed_port and (attempt or not self.port):
                self.port = _free_port()
            self._write_conf()
            proc = self._run(
                [
                    "pg_ctl",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    "30",
                    "start",
                ],
                check=False,
            )
            if proc.returncode == 0:
                atexit.register(self._atexit)
                return self
            port_taken = "already in use" in self._log_tail(4000)
            if self._fixed_port or not port_taken:
                break
        raise LocalPostgresError(self._failure("pg_ctl start failed", proc))

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``smart``/``fast``/``immediate``); no-op if not running."""
        atexit.unregister(self._atexit)
        if not self.is_running():
            return
        proc = self._run(
            ["pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30", "stop"], check=False
        )
        if proc.returncode != 0 and self.is_running():
            raise LocalPostgresError(self._failure("pg_ctl stop failed", proc))

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends at once, like a machine crash.

        Backends are killed too (each runs in its own session, so no killpg): otherwise
        a backend still attached to shared memory could block the next ``start()``.
        """
        atexit.unregister(self._atexit)
        pid = self._postmaster_pid()
        if pid is None or not _alive(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)  # no new forks while we collect the children
        victims = [*_children(pid), pid]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(map(_alive, victims)) and time.monotonic() < deadline:
            time.sleep(0.01)
        if os.path.exists(f"/proc/{pid}"):
            # An unreaped zombie (PID 1 may not reap) still answers kill(pid, 0), so the
            # next postmaster would think it is alive: drop its stale lock files.
            for lock in [self.data_dir / "postmaster.pid", *self.data_dir.glob(".s.PGSQL.*.lock")]:
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()

    def is_running(self) -> bool:
        pid = self._postmaster_pid()
        return pid is not None and _alive(pid)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (a copy of database ``template`` if given: a file copy,
        far quicker than building the same content again) and return its DSN."""
        copy = ["--template", template] if template else []
        self._run(
            ["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", *copy, name]
        )
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` even if clients are still connected."""
        self._run(
            ["dropdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "--force", name]
        )

    def cleanup(self) -> None:
        """Stop (immediately) if running and remove the whole directory."""
        if self.is_running():
            self.stop("immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop; remove the directory only if it was created by us (a temp dir)."""
        if self._owns_dir:
            self.cleanup()
        else:
            self.stop()

    # -- internals ---------------------------------------------------------------------
    def _prepare_dir(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._user is None:
            return
        # The postgres user must be able to traverse every parent: add search (x) bits
        # only, never read, so e.g. /root does not become listable.
        for parent in self.base_dir.parents:
            mode = parent.stat().st_mode
            if mode & stat.S_IXOTH == 0:
                os.chmod(parent, stat.S_IMODE(mode) | 0o711)
        # chown our own dir (mkdtemp's is 0700), never a pre-existing populated one.
        if self._owns_dir or not any(self.base_dir.iterdir()):
            os.chown(self.base_dir, self._user.pw_uid, self._user.pw_gid)

    def _initdb(self) -> None:
        self._run(
            [
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ]
        )
        hba = "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
        self._write(self.data_dir / "pg_hba.conf", hba)
        conf = self.data_dir / "postgresql.conf"
        self._write(conf, conf.read_text() + f"\ninclude_if_exists = '{_CONF_FILE}'\n")

    def _write_conf(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.data_dir}'",
            "max_connections": str(self.max_connections),
            "logging_collector": "off",
        }
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        text = "".join(f"{k} = {v}\n" for k, v in settings.items())
        self._write(self.data_dir / _CONF_FILE, text)

    def _write(self, path: Path, text: str) -> None:
        path.write_text(text)
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self._user is not None:
            cmd = ["runuser", "-u", self._user.pw_name, "--", *cmd]
        try:
            proc = subprocess.run(
                cmd,
                cwd=self.base_dir,
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "LC_ALL": "C"},
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise LocalPostgresError(f"{args[0]} could not run: {e}\n{self._log_tail()}") from e
        if check and proc.returncode != 0:
            raise LocalPostgresError(self._failure(f"{args[0]} failed", proc))
        return proc

    def _pid_file_lines(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return []

    def _postmaster_pid(self) -> int | None:
        try:
            return int(self._pid_file_lines()[0])
        except (IndexError, ValueError):
            return None

    def _log_tail(self, limit: int = 2000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def _failure(self, what: str, proc: subprocess.CompletedProcess[str]) -> str:
        return (
            f"{what} (exit {proc.returncode}) in {self.base_dir}\n"
            f"{proc.stdout}{proc.stderr}\n--- {self.log_file} (tail) ---\n"
            f"{self._log_tail()}"
        )

    def _atexit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
