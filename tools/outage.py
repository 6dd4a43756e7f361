"""Fault injection for outage tests: a PostgreSQL server that can be stopped and started
under a running node, and a small disk that can be filled and freed.

:class:`PrivatePostgres` is a throw-away cluster of its own (``initdb`` into a temporary
directory, served on a port of the caller's choosing), so that a test can restart *its*
database while other tests keep using the machine's shared server. PostgreSQL refuses
to run as root, so as root the cluster belongs to the ``postgres`` system user and every
server command runs through ``runuser``.

:class:`SmallDisk` is a size-limited tmpfs mounted on a directory (root only): a node's
data directory placed on it runs out of space when :meth:`SmallDisk.fill` writes a
filler file up to the limit, and gets room back when :meth:`SmallDisk.free` removes it.
tmpfs allocates whole pages, and reports the same limit to ``statvfs`` that writes hit,
so "full" here means what it means on a real disk: ``ENOSPC``.

Both clean up after themselves in :meth:`close`, which is safe to call in any state (a
finalizer's last resort). Nothing here imports ``node``: the helpers drive servers and
file systems, not Watan.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

__all__ = [
    "OutageUnavailable",
    "PrivatePostgres",
    "SmallDisk",
    "find_pg_bin",
]

#: Where Debian's postgresql-NN packages put the server programs (``initdb`` and
#: ``pg_ctl`` are not on PATH there: /usr/bin holds only the client wrappers).
_PG_BIN_GLOB: Final = "/usr/lib/postgresql/*/bin"
#: The system user PostgreSQL runs as on Debian (initdb refuses to run as root).
_PG_USER: Final = "postgres"
#: Seconds ``pg_ctl -w`` waits for the server to start or stop. A cold start on a busy
#: 2-core CI machine takes a second or two; 60 s only guards against a hang.
_PG_WAIT_S: Final = 60
#: Filler written per call: big enough that filling 16 MiB takes a few calls.
_CHUNK: Final = 1 << 20


class OutageUnavailable(Exception):
    """This machine cannot inject the fault (not root, no PostgreSQL server programs,
    mounting not permitted); the message says what is missing."""


def find_pg_bin() -> Path:
    """The directory of the newest installed PostgreSQL's server programs.

    Raises:
        OutageUnavailable: no ``initdb`` under /usr/lib/postgresql/*/bin, nor on PATH.
    """
    found = sorted(
        (Path(path) for path in glob.glob(_PG_BIN_GLOB) if Path(path, "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).parent
    raise OutageUnavailable("PostgreSQL's initdb is not installed (Debian: postgresql)")


class PrivatePostgres:
    """A PostgreSQL cluster of its own on ``127.0.0.1:port``, trust-authenticated for
    the ``postgres`` role (loopback only, and gone with the test).

    Use :meth:`create`, then :meth:`start`, :meth:`stop` and :meth:`start` again as the
    test needs, and :meth:`close` at the end.
    """

    def __init__(self, root: Path, port: int, bindir: Path) -> None:
        self.root = root
        self.port = port
        self._bin = bindir
        self._data = root / "data"
        self._log = root / "server.log"
        self._running = False

    @classmethod
    def create(cls, port: int) -> PrivatePostgres:
        """``initdb`` a new cluster in a new temporary directory (not started).

        Raises:
            OutageUnavailable: not root, or PostgreSQL's server programs are missing.
            subprocess.CalledProcessError: initdb failed (its output is in the error).
        """
        if os.geteuid() != 0:
            raise OutageUnavailable("a private PostgreSQL cluster needs root (runuser)")
        bindir = find_pg_bin()
        try:
            owner = pwd.getpwnam(_PG_USER)
        except KeyError:
            raise OutageUnavailable(f"no {_PG_USER!r} system user") from None
        # In /tmp, not in pytest's tmp_path: that lies under a 0700 directory of root's,
        # which the postgres user could not enter.
        root = Path(tempfile.mkdtemp(prefix="watan-pg-"))
        os.chown(root, owner.pw_uid, owner.pw_gid)
        cluster = cls(root, port, bindir)
        try:
            cluster._as_postgres(
                "initdb",
                "--pgdata",
                str(cluster._data),
                "--username",
                _PG_USER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",  # a throw-away cluster: no need to wait for the disk
            )
        except BaseException:
            cluster.close()
            raise
        return cluster

    @property
    def url(self) -> str:
        """The database URL a node is given (the cluster's own ``postgres`` database)."""
        return f"postgresql://{_PG_USER}@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> str:
        """The server's log so far (for a failing test's message)."""
        try:
            return self._log.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> None:
        """Start the server and wait until it accepts connections.

        Raises:
            subprocess.CalledProcessError: it did not start (the port is taken, ...).
        """
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            # A test server: durability against a machine crash is not what it tests
            # (a fast or immediate stop still loses nothing that was committed).
            "-c fsync=off -c max_connections=30 -c shared_buffers=16MB"
        )
        self._pg_ctl("start", "-l", str(self._log), "-o", options)
        self._running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (roll back open transactions, close connections,
        checkpoint) or ``immediate`` (abort at once; the next start recovers from the
        WAL, as after a power cut)."""
        self._pg_ctl("stop", "-m", mode)
        self._running = False

    def close(self) -> None:
        """Stop the server if it runs and delete the cluster; never raises."""
        if self._running:
            with contextlib.suppress(Exception):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        self._as_postgres("pg_ctl", "--pgdata", str(self._data), "-w", "-t", str(_PG_WAIT_S), *args)

    def _as_postgres(self, program: str, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", _PG_USER, "--", str(self._bin / program), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=_PG_WAIT_S + 30,
            cwd=self.root,
        )


class SmallDisk:
    """A tmpfs of ``size_mib`` MiB mounted on ``mountpoint`` (created if missing).

    Raises (from the constructor):
        OutageUnavailable: not root, or the kernel refused the mount (a container
            without CAP_SYS_ADMIN).
    """

    def __init__(self, mountpoint: Path, size_mib: int) -> None:
        if os.geteuid() != 0:
            raise OutageUnavailable("mounting a tmpfs needs root")
        mountpoint.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(mountpoint)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise OutageUnavailable(f"cannot mount a tmpfs: {done.stderr.strip()}")
        self.path = mountpoint
        self._filler = mountpoint / "filler"
        self._mounted = True

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer could still allocate."""
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize

    def fill(self) -> int:
        """Write the filler file until the disk refuses more (ENOSPC); returns its
        size. Call again to take space freed since (by a WAL checkpoint, say)."""
        block = b"\0" * _CHUNK
        with self._filler.open("ab") as filler:
            size = filler.tell()
            chunk = block
            while chunk:
                try:
                    written = os.write(filler.fileno(), chunk)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    # a smaller write may still fit in the last partial page
                    chunk = chunk[: len(chunk) // 2]
                    continue
                size += written
                if written < len(chunk):
                    chunk = chunk[: len(chunk) // 2]
        return size

    def free(self) -> None:
        """Remove the filler: the space it held is free again."""
        self._filler.unlink(missing_ok=True)

    def close(self) -> None:
        """Unmount (lazily if something still holds a file open); never raises."""
        if self._mounted:
            done = subprocess.run(["umount", str(self.path)], capture_output=True, check=False)
            if done.returncode != 0:
                subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)
            self._mounted = False
