"""Which file system a directory is on: a directory store on a network file system is
refused, since SQLite's locks (and so the store's atomicity) do not hold there.

The file system of a path is that of its longest mount point prefix in
``/proc/self/mountinfo`` (Linux). Where that file cannot be read (another OS), nothing
is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError

__all__ = ["NETWORK_FILESYSTEMS", "file_system_of", "refuse_network_directory"]

NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "afs", "coda",
        "ceph", "fuse.ceph", "glusterfs", "fuse.glusterfs", "lustre", "gpfs", "ocfs2",
        "gfs2", "beegfs", "fuse.sshfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone",
        "fuse.juicefs", "davfs", "fuse.davfs2",
    }
)  # fmt: skip
"""File system types whose locks SQLite cannot trust (9p, a VM's shared folder, and
local FUSE file systems are allowed)."""


def _unescape(field: str) -> str:
    """A mountinfo path field: spaces, tabs, newlines and backslashes are octal-escaped."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def file_system_of(path: str | os.PathLike[str], mountinfo: str) -> tuple[str, str] | None:
    """The ``(mount point, file system type)`` that holds ``path`` (an absolute, resolved
    path) according to the text of ``/proc/self/mountinfo``; ``None`` if none does."""
    target = str(path)
    best: tuple[str, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = _unescape(fields[4])
        after = line.split(" - ", 1)[1].split()
        if not after:
            continue
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        # Mounts listed later hide earlier ones at the same point: the last one wins.
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, after[0])
    return best


def _mountinfo() -> str | None:
    try:
        return Path("/proc/self/mountinfo").read_text(errors="replace")
    except OSError:
        return None


def refuse_network_directory(path: Path, mountinfo: str | None = None) -> None:
    """Raise ConfigError if the directory ``path`` (existing or not) is on a network
    file system. ``mountinfo`` defaults to this process's ``/proc/self/mountinfo``."""
    text = _mountinfo() if mountinfo is None else mountinfo
    if text is None:
        return
    found = file_system_of(path.expanduser().resolve(), text)
    if found is None or found[1].lower() not in NETWORK_FILESYSTEMS:
        return
    point, kind = found
    raise ConfigError(
        f"{path} is on a network file system ({kind} mounted at {point}). A directory "
        "store is one SQLite database, whose locks do not hold over a network file "
        "system: concurrent writers there can lose or damage records. Use a directory "
        "on a local disk, or, to share runs between hosts, a Postgres store: "
        'store="postgresql://USER@HOST:PORT/DB" (or $RECORDER_STORE); see docs/scale.md.'
    )
