"""Bundles refused before anything is created or inflated: the command line creates no
store directory for a refused bundle, a bundle that inflates far beyond its size is
refused from its zip directory alone (memory stays bounded), and a run name inside a
bundle passes the same rules as a name given to ``recorder.run``."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder import records
from recorder.bundle import BundleError, export_bundle, import_bundle
from recorder.keys import hash_bytes
from recorder.records import RunRecord
from recorder.store import MemoryStore

pytestmark = pytest.mark.integration

SCRIPT = Path(sys.executable).with_name("recorder")


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = MemoryStore()
    with recorder.run("portable", inputs={"n": 1}, store=store, display=False) as run:
        run.step("shout", str.upper, "bundle")
        run.step("big", "\n".join, [f"line {i}" for i in range(200)])
    return export_bundle(run.run_id, tmp_path_factory.mktemp("good") / "good.zip", store=store)


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | 0o600) << 16
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    return path


def renamed(bundle: Path, out: Path, name: str, run_id: str | None = None) -> Path:
    """A copy of ``bundle`` whose run is called ``name`` (its id made as recorder.run
    makes it, unless ``run_id`` is given), every hash in the manifest fixed."""
    with zipfile.ZipFile(bundle) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    manifest = json.loads(members.pop("manifest.json"))
    run = records.load(RunRecord, members["run.json"], where="run.json")
    run = dataclasses.replace(run, name=name, run_id=run_id or f"{name}@{run.inputs_hash[7:19]}")
    members["run.json"] = records.dump(run)
    manifest["run_id"] = run.run_id
    manifest["members"] = {n: hash_bytes(d) for n, d in members.items()}
    return write_zip(out, {"manifest.json": json.dumps(manifest).encode(), **members})


def cli(*args: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *(str(a) for a in args)], capture_output=True,
                          text=True, timeout=120, check=False, env=env)  # fmt: skip


def test_the_command_line_creates_no_store_for_a_refused_bundle(
    good_bundle: Path, tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good_bundle.read_bytes()[:-40])
    misnamed = renamed(good_bundle, tmp_path / "misnamed.zip", "a\u200bb")
    target = tmp_path / "new" / "store"
    env = {**os.environ, "RECORDER_DIR": str(target)}
    for bad, why in ((truncated, "not a readable zip"), (misnamed, "run.json: run name")):
        done = cli("--store", target, "import", bad)
        assert done.returncode == 1 and why in done.stderr, done.stderr
        assert not target.parent.exists()
        done = cli("import", bad, env=env)
        assert done.returncode == 1 and why in done.stderr, done.stderr
        assert not target.parent.exists()
    done = cli("import", good_bundle, env=env)  # a good one creates the store
    assert done.returncode == 0, done.stderr
    assert (target / "cache.db").is_file()


def test_many_small_members_that_inflate_too_far_are_refused_before_inflating(
    tmp_path: Path,
) -> None:
    """700 members of 1 MiB of zeros (each under the per-member zip bomb bound) in a zip
    of under 1 MB: refused from the zip directory, with a few MB of memory at most."""
    zeros = bytes(2**20)
    members = {f"blobs/{i:064x}": zeros for i in range(700)}
    manifest = {"bundle_format": 1, "run_id": "x@000000000000", "withheld": {},
                "members": dict.fromkeys(members, hash_bytes(zeros))}  # fmt: skip
    bomb = write_zip(tmp_path / "bomb.zip", {"manifest.json": json.dumps(manifest).encode(),
                                            **members})  # fmt: skip
    del members
    assert bomb.stat().st_size < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(BundleError, match="zip bomb"):
            import_bundle(bomb, store=MemoryStore())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"{peak:,} bytes allocated"
    store = tmp_path / "store"
    done = cli("--store", store, "import", bomb)
    assert done.returncode == 1 and "zip bomb" in done.stderr, done.stderr
    assert not store.exists()


NAMES = {
    "zero-width space": "tri\u200bage",
    "right-to-left override": "triage\u202egpj.exe",
    "division slash": "a\u2215b",
    "fullwidth solidus": "a\uff0fb",
    "too long": "n" * 201,
    "surrounding space": " triage",
    "dot-dot": "..",
}


@pytest.mark.parametrize("case", list(NAMES))
def test_a_run_name_the_api_refuses_is_refused_in_a_bundle(
    case: str, good_bundle: Path, tmp_path: Path
) -> None:
    bad = renamed(good_bundle, tmp_path / "bad.zip", NAMES[case])
    store = MemoryStore()
    with pytest.raises(BundleError, match=r"run name .* is refused") as caught:
        import_bundle(bad, store=store)
    assert "Nothing was written" in str(caught.value)
    assert store.scan("") == []


def test_a_run_id_that_is_not_its_name_and_inputs_hash_is_refused(
    good_bundle: Path, tmp_path: Path
) -> None:
    other = renamed(good_bundle, tmp_path / "other.zip", "portable", run_id="other@0123456789ab")
    with pytest.raises(BundleError, match="make another id"):
        import_bundle(other, store=MemoryStore())
    fine = renamed(good_bundle, tmp_path / "fine.zip", "triage v2")
    assert import_bundle(fine, store=MemoryStore()).startswith("triage v2@")
