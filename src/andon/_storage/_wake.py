"""Local wake-ups: the process that commits a cancel (or an end) pokes the watchers of this
machine at once, rather than leaving them to see it at their next ``data_version`` poll.

Each SQLite watcher that waits for :data:`WOKEN_CHANGES` binds a Unix datagram socket in a
folder of its own per database file, ``/tmp/andon-<uid>/wake/<device>-<inode>/``: the
socket's name says what it waits for (``c`` cancel, ``e`` ended), the process and a random
tag. After a commit that made such a change, the writer sends one datagram to every socket
there that waits for it.

What keeps this safe:

* **Only our own folder.** Every folder on the way is created mode 0700 and checked (a real
  directory, not a link, owned by this user, no access for group or others); if one is not,
  this process does without wake-ups (the poll still sees every commit). Nobody else can
  reach the sockets, and nothing is sent anywhere else.
* **The writer never waits.** Sends are non-blocking and every error is ignored; a socket
  whose process is gone (refused) is removed. At most :data:`MAX_TARGETS` sockets are
  poked per commit.
* **A datagram is a hint, never a cancel.** A watcher that receives one that is well formed
  looks at ``data_version``, as its poll would, and reports a change only if the database
  changed; anything else it receives is dropped. What is cancelled, why, and by whom is
  read from the store, as always.

Another user's processes, a private ``/tmp``, or a platform without Unix sockets: no
wake-ups, the poll (2 ms by default) delivers as before.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Final, final

from andon._storage._port import Change

__all__ = ["MAX_DATAGRAM", "WOKEN_CHANGES", "WakeFolder", "WakeSocket", "is_wake", "wake_folder"]

log = logging.getLogger("andon._storage._wake")

WOKEN_CHANGES: Final = frozenset({Change.CANCEL, Change.ENDED})
"""The changes that wake watchers at once (new work is seen at the next poll)."""
_LETTERS: Final = {Change.CANCEL: "c", Change.ENDED: "e"}
_NAME: Final = re.compile(r"^([ce]{1,2})-(\d{1,10})-([0-9a-f]{12})$")
_ID: Final = re.compile(r"^[0-9A-Za-z_.:-]{1,200}$")
MAX_DATAGRAM: Final = 4096
"""A datagram's size at most: sent ones are cut to it, received ones past it are dropped."""
MAX_TARGETS: Final = 256
"""Sockets poked per commit at most (the rest see the change at their poll)."""
_PREFIX: Final = b"andon-wake 1 "
_LISTING_TRUST_NS: Final = 50_000_000
"""A folder's listing is reused while its mtime is unchanged and was this much older than the
listing (a coarse mtime could otherwise hide a socket bound just after the listing)."""


def _private_dir(path: Path) -> bool:
    """Create ``path`` (mode 0700) if missing; ``True`` if it is a private directory of ours."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    return (
        stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    )


def wake_folder(database: str) -> WakeFolder | None:
    """The wake folder of the SQLite file ``database``; ``None`` where wake-ups cannot be used
    (no Unix sockets, no such file yet, a folder that is not privately ours)."""
    if not hasattr(socket, "AF_UNIX") or not hasattr(os, "getuid") or database == ":memory:":
        return None
    try:
        info = os.stat(database)
        base = Path("/tmp", f"andon-{os.getuid()}")
        folder = base / "wake" / f"{info.st_dev:x}-{info.st_ino:x}"
        for step in (base, base / "wake", folder):
            if not _private_dir(step):
                log.warning("%s is not a private folder of this user: local wake-ups are off", step)
                return None
    except OSError as exc:
        log.debug("no local wake-ups for %s: %s", database, exc)
        return None
    try:
        return WakeFolder(folder)
    except OSError as exc:  # no socket could be made
        log.debug("no local wake-ups for %s: %s", database, exc)
        return None


def _encode(changes: Collection[Change], job_ids: Iterable[str]) -> bytes:
    """The datagram: the prefix, the change letters, then as many job ids as fit."""
    datagram = _PREFIX + "".join(sorted(_LETTERS[c] for c in changes if c in _LETTERS)).encode()
    for job_id in job_ids:
        if _ID.match(job_id):
            if len(datagram) + 1 + len(job_id) > MAX_DATAGRAM:
                break
            datagram += b" " + job_id.encode()
    return datagram


def is_wake(datagram: bytes) -> bool:
    """A well-formed wake-up: our prefix, known change letters, then job ids."""
    if len(datagram) > MAX_DATAGRAM or not datagram.startswith(_PREFIX):
        return False
    try:
        letters, *job_ids = datagram[len(_PREFIX) :].decode("ascii").split(" ")
    except UnicodeDecodeError:
        return False
    return bool(letters) and set(letters) <= {"c", "e"} and all(_ID.match(job_id) for job_id in job_ids)


@final
class WakeFolder:
    """The wake folder of one database file: bind sockets in it, or poke the ones there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime_ns = -1
        self._listed_ns = 0
        self._targets: list[tuple[str, frozenset[Change]]] = []
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)

    def listen(self, changes: Collection[Change]) -> WakeSocket | None:
        """A socket woken by commits of ``changes`` (of :data:`WOKEN_CHANGES`); ``None`` if none."""
        letters = "".join(sorted(_LETTERS[c] for c in changes if c in _LETTERS))
        if not letters:
            return None
        name = f"{letters}-{os.getpid()}-{secrets.token_hex(6)}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(str(self.path / name))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            log.debug("cannot bind a wake socket in %s: %s", self.path, exc)
            return None
        return WakeSocket(sock, self.path / name)

    def poke(self, changes: Collection[Change], job_ids: Iterable[str] = ()) -> None:
        """After a commit of ``changes``: one datagram to each socket waiting for one of them.

        Never blocks and never raises: a wake-up is an optimisation, the poll is the guarantee.
        """
        wanted = frozenset(changes) & WOKEN_CHANGES
        if not wanted:
            return
        try:
            targets = [name for name, waits in self._listing() if waits & wanted][:MAX_TARGETS]
            if not targets:
                return
            datagram = _encode(wanted, job_ids)
            for name in targets:
                self._send(self._sender, name, datagram)
        except OSError as exc:  # the folder went away, or no socket could be made: the poll will do
            log.debug("local wake-up skipped: %s", exc)

    def _send(self, sender: socket.socket, name: str, datagram: bytes) -> None:
        try:
            sender.sendto(datagram, str(self.path / name))
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                # Nobody is bound to it: the socket of a process that is gone.
                with contextlib.suppress(OSError):
                    os.unlink(self.path / name)
                self._mtime_ns = -1
            # EAGAIN (its queue is full: it has wake-ups waiting anyway) and the rest: ignore.

    def _listing(self) -> list[tuple[str, frozenset[Change]]]:
        mtime_ns = os.stat(self.path).st_mtime_ns
        if mtime_ns != self._mtime_ns or self._listed_ns - mtime_ns < _LISTING_TRUST_NS:
            self._listed_ns = time.time_ns()
            self._mtime_ns = mtime_ns
            targets = []
            for name in os.listdir(self.path):
                found = _NAME.match(name)
                if found is not None:
                    letters = found.group(1)
                    targets.append((name, frozenset(c for c, letter in _LETTERS.items() if letter in letters)))
            self._targets = targets
        return self._targets

    def close(self) -> None:
        self._sender.close()


@final
class WakeSocket:
    """One watcher's bound socket. Unlinked when closed (or, after a crash, by the next writer)."""

    def __init__(self, sock: socket.socket, path: Path) -> None:
        self.sock = sock
        self.path = path
        self._pid = os.getpid()
        self.received = 0
        """Well-formed wake-ups taken so far (tests look at it)."""

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> bool:
        """Take every datagram waiting; ``True`` if one of them was a well-formed wake-up."""
        woken = False
        while True:
            try:
                datagram = self.sock.recv(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return woken
            except OSError:
                return woken
            if is_wake(datagram):
                self.received += 1
                woken = True

    def nudge(self) -> None:
        """Wake whoever waits on this socket (an empty datagram: not a wake-up, just a return)."""
        with contextlib.suppress(OSError):
            self.sock.sendto(b"", str(self.path))

    def close(self) -> None:
        if os.getpid() == self._pid:  # a forked child closing its copy leaves the parent's socket
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self.sock.close()
