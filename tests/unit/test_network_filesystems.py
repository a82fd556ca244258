"""A directory store on a network file system is refused, pointing to Postgres: the
file system is read from mountinfo (here a fake one: no NFS on the test machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.errors import ConfigError
from recorder.stores.network import file_system_of, refuse_network_directory

MOUNTINFO = r"""22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 253:1 / / rw,relatime - ext4 /dev/vda rw
40 27 0:50 / /home rw,relatime - nfs4 fs:/export/home rw,vers=4.2
41 40 0:51 / /home/ada/local rw,relatime - ext4 /dev/vdb rw
42 27 0:52 / /mnt/share\040drive rw - cifs //nas/share rw
43 27 0:53 / /mnt/vm rw - 9p hostshare rw
44 27 0:54 / /mnt/remote rw - fuse.sshfs ada@host:/ rw
45 27 0:55 / /srv rw - ext4 /dev/vdc rw
46 27 0:56 / /srv rw - nfs srv:/export rw
"""


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/home/ada/.recorder", "nfs4"),
        ("/home/ada/local/.recorder", "ext4"),  # a local disk mounted inside the NFS home
        ("/home", "nfs4"),
        ("/homework/x", "ext4"),  # a prefix of the text is not a parent directory
        ("/mnt/share drive/runs", "cifs"),  # octal escapes in mountinfo
        ("/mnt/vm/runs", "9p"),
        ("/mnt/remote/runs", "fuse.sshfs"),
        ("/srv/runs", "nfs"),  # mounted over /srv: the last mount wins
        ("/tmp/x", "ext4"),
    ],
)
def test_the_file_system_of_a_path_is_its_longest_mount_point(path: str, kind: str) -> None:
    found = file_system_of(path, MOUNTINFO)
    assert found is not None and found[1] == kind


@pytest.mark.parametrize("path", ["/home/ada/.recorder", "/mnt/share drive/r", "/mnt/remote/r"])
def test_a_store_on_a_network_file_system_is_refused_pointing_to_postgres(path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        refuse_network_directory(Path(path), MOUNTINFO)
    message = str(caught.value)
    assert "network file system" in message and 'store="postgresql://' in message
    assert "RECORDER_STORE" in message


@pytest.mark.parametrize("path", ["/home/ada/local/x", "/mnt/vm/runs", "/tmp/x"])
def test_local_and_9p_directories_are_allowed(path: str) -> None:
    refuse_network_directory(Path(path), MOUNTINFO)


def test_the_disk_store_checks_this_machines_mounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recorder.stores.disk as disk
    from recorder.stores import DiskStore

    seen: list[Path] = []
    monkeypatch.setattr(disk, "refuse_network_directory", seen.append)
    DiskStore(tmp_path / "s").close()
    assert seen == [tmp_path / "s"]
    refuse_network_directory(tmp_path)  # the real /proc/self/mountinfo: a local disk
