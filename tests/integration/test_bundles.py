"""Portable bundles (``recorder.bundle``) and run diffs (``recorder.rundiff``).

A run recorded in one store is exported to one file, imported into another store and
replayed there with ``mode="replay"`` (nothing goes live). Browser checkpoints stay out
of a bundle unless asked for. Hostile or damaged bundles are refused with a message
naming the problem and nothing written. The fixture bundle of every format still
imports and replays. The command line runs as real subprocesses.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder.bundle import BundleError, export_bundle, import_bundle, read_manifest
from recorder.errors import DamagedRecordError
from recorder.journal import Journal
from recorder.keys import hash_bytes
from recorder.records import StepRecord
from recorder.rundiff import diff, format_diff
from recorder.store import DiskStore, MemoryStore, Store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = sorted((ROOT / "fixtures" / "bundles").iterdir())
SCRIPT = Path(sys.executable).with_name("recorder")
CANARY = "canary-cookie-5f1d2c9e7b"


def _fixture_module(directory: Path) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"bundle_{directory.name.replace('-', '_')}", directory / "make_bundle.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _fixture_module(ROOT / "fixtures" / "bundles" / "format-1")


def record(store: Store | Path, *, name: str = "portable") -> tuple[str, dict[str, Any]]:
    with recorder.run(name, inputs={"n": 1}, store=store, display=False) as run:
        result = MAKER.program(run)
    return run.run_id, result


def replay(store: Store | Path, *, name: str = "portable") -> tuple[dict[str, Any], list[str]]:
    """The program replayed with mode="replay", and the statuses of its step calls."""
    with recorder.run(name, inputs={"n": 1}, store=store, mode="replay", display=False) as run:
        result = MAKER.program(run)
    frame = run.to_dataframe()
    last = frame[frame["attempt"] == frame["attempt"].max()]
    return result, list(last["status"])


def add_checkpoint(store: Store, run_id: str) -> str:
    """Give a run a browser-like step whose checkpoint blob holds a session cookie."""
    journal = Journal(store)
    run = journal.get_run(run_id)
    assert run is not None
    checkpoint = json.dumps(
        {
            "url": "http://127.0.0.1/account",
            "cookies": [{"name": "session", "value": CANARY, "domain": "127.0.0.1", "path": "/"}],
            "origins": [],
            "viewport": None,
        }
    ).encode()
    ref = hash_bytes(checkpoint)
    step = StepRecord(key="sha256:" + "ab" * 32, occurrence=0, kind="browser", name="fill",
                      generation=run.generation, attempt=1, seq=99, started_at=1.0,
                      duration_s=0.1, result=None, meta={"checkpoint": ref, "url": "x"},
                      blobs=(ref,))  # fmt: skip
    journal.put_step(run_id, step, {ref: checkpoint})
    return ref


def unzipped(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return b"".join(archive.read(n) for n in archive.namelist())


# -- round trip ----------------------------------------------------------------------


def test_round_trip_replays_with_nothing_live(tmp_path: Path) -> None:
    source = DiskStore(tmp_path / "a")
    run_id, recorded = record(source)
    bundle = export_bundle("portable", tmp_path / "out" / "run.bundle", store=source)
    assert [p.name for p in bundle.parent.iterdir()] == ["run.bundle"]  # no temp file left

    target = DiskStore(tmp_path / "b")
    assert import_bundle(bundle, store=target) == run_id
    result, statuses = replay(target)
    assert result == recorded
    assert len(recorded["big"]) > 512 and recorded["error"] == "ticket 7 is closed"
    assert statuses and set(statuses) == {"replayed"}
    assert Journal(target).verify() == []
    # a second import of the same bundle is a no-op
    assert import_bundle(bundle, store=target) == run_id


def test_manifest_lists_every_member_with_its_hash(tmp_path: Path) -> None:
    store = MemoryStore()
    run_id, _ = record(store)
    bundle = export_bundle(run_id, tmp_path / "run.zip", store=store)
    manifest = read_manifest(bundle)
    assert manifest["bundle_format"] == 1
    assert manifest["recorder_version"] == recorder.__version__
    assert manifest["run_id"] == run_id
    assert manifest["counts"]["steps"] == 6 and manifest["counts"]["attempts"] == 1
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist()) - {"manifest.json"}
        assert names == set(manifest["members"])
        for name in names:
            assert hash_bytes(archive.read(name)) == manifest["members"][name]
            info = archive.getinfo(name)
            assert stat.S_IMODE(info.external_attr >> 16) & 0o111 == 0


def test_a_run_already_there_differently_needs_replace(tmp_path: Path) -> None:
    source, target = MemoryStore(), MemoryStore()
    run_id, recorded = record(source)
    bundle = export_bundle(run_id, tmp_path / "run.zip", store=source)
    with recorder.run(
        "portable", inputs={"n": 1}, store=target, mode="record", display=False
    ) as run:
        other = MAKER.program(run)
    assert other != recorded
    before = dict(target.scan(""))
    with pytest.raises(BundleError, match=r"already holds run .* replace=True"):
        import_bundle(bundle, store=target)
    assert dict(target.scan("")) == before
    assert import_bundle(bundle, store=target, replace=True) == run_id
    assert replay(target)[0] == recorded
    assert Journal(target).verify() == []


# -- secrets -------------------------------------------------------------------------


def test_checkpoints_are_withheld_unless_asked_for(tmp_path: Path) -> None:
    source = MemoryStore()
    run_id, _ = record(source)
    ref = add_checkpoint(source, run_id)

    plain = export_bundle(run_id, tmp_path / "plain.zip", store=source)
    assert CANARY.encode() not in plain.read_bytes()
    assert CANARY.encode() not in unzipped(plain)
    manifest = read_manifest(plain)
    assert list(manifest["withheld"]) == [ref] and manifest["counts"]["withheld"] == 1
    assert "step #99 (browser 'fill', attempt 1)" in manifest["withheld"][ref]["steps"]

    target = MemoryStore()
    import_bundle(plain, store=target)
    assert target.get("blob/" + ref) is None
    marker = json.loads(target.get(f"withheld/{run_id}/{ref}") or b"{}")
    assert marker["bundle"] == "plain.zip" and "cookies" in marker["why"]["reason"]
    with pytest.raises(DamagedRecordError, match="exported without secrets"):
        Journal(target).blob(ref, step="page 0 checkpoint")
    assert Journal(target).verify() == [], "a withheld blob is not damage"
    assert replay(target)[0]  # replaying needs no checkpoint

    secret = export_bundle(run_id, tmp_path / "secret.zip", store=source, include_secrets=True)
    assert CANARY.encode() in unzipped(secret)
    assert read_manifest(secret)["withheld"] == {}
    other = MemoryStore()
    import_bundle(secret, store=other)
    assert CANARY.encode() in Journal(other).blob(ref)


# -- hostile bundles -----------------------------------------------------------------


def rewrite(
    bundle: Path,
    out: Path,
    change: Callable[[dict[str, bytes]], None] = lambda members: None,
    *,
    fix_manifest: bool = True,
    extra: list[tuple[zipfile.ZipInfo, bytes]] = (),  # type: ignore[assignment]
) -> Path:
    """A copy of ``bundle`` with its members changed (and the manifest's hashes fixed to
    match, so that only the check under test can catch it)."""
    with zipfile.ZipFile(bundle) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    manifest = json.loads(members.pop("manifest.json"))
    change(members)
    if fix_manifest:
        manifest["members"] = {n: hash_bytes(d) for n, d in members.items()}
        for info, data in extra:
            manifest["members"][info.filename] = hash_bytes(data)
    members = {"manifest.json": json.dumps(manifest).encode(), **members}
    if "manifest.json.raw" in members:
        members["manifest.json"] = members.pop("manifest.json.raw")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | 0o600) << 16
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
        for info, data in extra:
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    return out


def _first_blob(members: dict[str, bytes]) -> str:
    return next(n for n in sorted(members) if n.startswith("blobs/"))


def _tamper(members: dict[str, bytes]) -> None:
    name = _first_blob(members)
    members[name] = members[name] + b" "


def _info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


def _newer(members: dict[str, bytes]) -> None:
    doc = {"bundle_format": 2, "recorder_version": "9.0", "run_id": "x@000000000000",
           "members": {}, "withheld": {}}  # fmt: skip
    members["manifest.json.raw"] = json.dumps(doc).encode()


def _bomb() -> tuple[zipfile.ZipInfo, bytes]:
    data = bytes(8 * 2**20)
    return _info("blobs/" + hash_bytes(data)[7:], stat.S_IFREG | 0o600), data


HOSTILE: dict[str, tuple[dict[str, Any], str]] = {
    "tampered blob": ({"change": _tamper}, "hashes to sha256:[0-9a-f]+, not to its name"),
    "tampered blob, manifest not fixed": (
        {"change": _tamper, "fix_manifest": False},
        "does not match its hash: manifest.json says sha256:",
    ),
    "dot-dot member": ({"extra": [(_info("../x", stat.S_IFREG | 0o600), b"x")]}, r"'\.\./x'"),
    "absolute member": ({"extra": [(_info("/etc/x", stat.S_IFREG | 0o600), b"x")]}, "absolute"),
    "symlink member": (
        {"extra": [(_info("blobs/" + "0" * 64, stat.S_IFLNK | 0o777), b"/etc/passwd")]},
        "symbolic link",
    ),
    "executable member": (
        {"extra": [(_info("attempts/000009.json", stat.S_IFREG | 0o755), b"{}")]},
        "executable",
    ),
    "unknown member": (
        {"extra": [(_info("notes.txt", stat.S_IFREG | 0o600), b"hi")]},
        "'notes.txt' is not part of the bundle layout",
    ),
    "unlisted member": (
        {
            "extra": [(_info("attempts/000009.json", stat.S_IFREG | 0o600), b"{}")],
            "fix_manifest": False,
        },
        "'attempts/000009.json' is not listed",
    ),
    "newer bundle_format": ({"change": _newer}, "bundle_format 2 .* Upgrade recorder"),
    "zip bomb": ({"extra": [_bomb()]}, "zip bomb"),
    "missing blob": (
        {"change": lambda m: m.pop(_first_blob(m))},
        "needs blob sha256:[0-9a-f]+, which the bundle does not hold",
    ),
    "bad record": (
        {"change": lambda m: m.update({"run.json": b'{"run_id": 3}'})},
        "run.json",
    ),
}


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = MemoryStore()
    run_id, _ = record(store)
    return export_bundle(run_id, tmp_path_factory.mktemp("good") / "good.zip", store=store)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_bundle_is_refused_with_nothing_written(
    case: str, good_bundle: Path, tmp_path: Path
) -> None:
    options, message = HOSTILE[case]
    bad = rewrite(good_bundle, tmp_path / "bad.zip", **options)
    store = MemoryStore()
    with pytest.raises(BundleError, match=message) as caught:
        import_bundle(bad, store=store)
    assert "Upgrade" in str(caught.value) or "refused" in str(caught.value)
    assert store.scan("") == []
    disk = tmp_path / "disk"
    with pytest.raises(BundleError):
        import_bundle(bad, store=disk)
    assert not disk.exists() or DiskStore(disk).scan("run/") == []


def test_a_truncated_or_oversized_bundle_is_refused(good_bundle: Path, tmp_path: Path) -> None:
    data = good_bundle.read_bytes()
    for size in (0, 40, len(data) // 2, len(data) - 10):
        cut = tmp_path / f"cut{size}.zip"
        cut.write_bytes(data[:size])
        store = MemoryStore()
        with pytest.raises(BundleError, match="refused"):
            import_bundle(cut, store=store)
        assert store.scan("") == []
    with pytest.raises(BundleError, match="more than the limit of 1,000"):
        import_bundle(good_bundle, store=MemoryStore(), max_bytes=1000)
    with pytest.raises(BundleError, match="members, more than the limit of 3"):
        import_bundle(good_bundle, store=MemoryStore(), max_members=3)


def test_a_member_damaged_inside_the_zip_is_refused(good_bundle: Path, tmp_path: Path) -> None:
    """Bytes flipped in a compressed member: the CRC or inflate fails, named."""
    data = bytearray(good_bundle.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo(_first_blob({n: b"" for n in archive.namelist()}))
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    bad = tmp_path / "flipped.zip"
    bad.write_bytes(bytes(data))
    store = MemoryStore()
    with pytest.raises(BundleError, match=r"damaged|does not match|hashes to"):
        import_bundle(bad, store=store)
    assert store.scan("") == []


# -- the fixture bundle of every format ------------------------------------------------


@pytest.mark.parametrize("directory", BUNDLES, ids=[p.name for p in BUNDLES])
def test_a_fixture_bundle_imports_and_replays(directory: Path, tmp_path: Path) -> None:
    expected = json.loads((directory / "expected.json").read_text())
    maker = _fixture_module(directory)
    store = DiskStore(tmp_path / "store")
    assert import_bundle(directory / "bundle.zip", store=store) == expected["run_id"]
    with recorder.run(maker.RUN_NAME, inputs=maker.INPUTS, store=store, mode="replay",
                      display=False) as run:  # fmt: skip
        assert maker.program(run) == expected["program"]
    assert Journal(store).verify() == []


def test_there_is_a_fixture_bundle_for_the_current_format() -> None:
    from recorder.bundle import BUNDLE_FORMAT

    assert any(p.name == f"format-{BUNDLE_FORMAT}" for p in BUNDLES)


# -- diff ------------------------------------------------------------------------------


def _adder(run: Any, b: int) -> None:
    run.step("shout", str.upper, "same")
    run.step("add", lambda x, y: x + y, 1, b)
    run.step("shout", str.upper, "after")


def test_diff_names_the_differing_argument(tmp_path: Path) -> None:
    store = MemoryStore()
    with recorder.run("diffed", inputs={"b": 2}, store=store, display=False) as run:
        _adder(run, 2)
    a = run.run_id
    with recorder.run("diffed", inputs={"b": 3}, store=store, display=False) as run:
        _adder(run, 3)
    b = run.run_id
    result = diff(a, b, store=store)
    assert not result.identical and result.compared == 3
    [step] = result.steps
    assert result.first_divergence == step.seq
    assert step.a is not None and step.a.name == "add" and not step.same_key
    assert step.request == {"request.args[1]": (2, 3)}
    assert step.result == {"result": (3, 4)}
    text = format_diff(result)
    assert "request request.args[1]: 2 -> 3" in text and "result result: 3 -> 4" in text

    same = diff(a, a, store=store)
    assert same.identical and same.first_divergence is None


def test_diff_of_two_attempts(tmp_path: Path) -> None:
    store = MemoryStore()
    with recorder.run("attempts", store=store, display=False) as run:
        run.step("shout", str.upper, "a")
    with recorder.run("attempts", store=store, display=False) as run:
        run.step("shout", str.upper, "a")
        run.step("shout", str.upper, "b")
    result = diff(f"{run.run_id}@attempt:1", f"{run.run_id}@attempt:2", store=store)
    [step] = result.steps
    assert step.a is None and step.b is not None and step.b.status == "ok"
    assert result.b.endswith("@attempt:2")
    with pytest.raises(recorder.RunNotFoundError, match="no attempt 7"):
        diff(f"{run.run_id}@attempt:7", run.run_id, store=store)


# -- the command line ------------------------------------------------------------------


def cli(*args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *(str(a) for a in args)], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_cli_export_import_and_diff(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    run_id, recorded = record(a)
    with recorder.run("portable", inputs={"n": 2}, store=a, display=False) as run:
        run.step("shout", str.upper, "other")
    bundle = tmp_path / "run.bundle"

    done = cli("--store", a, "export", run_id, "--bundle", bundle)
    assert done.returncode == 0, done.stderr
    assert f"wrote run {run_id} to bundle" in done.stdout
    done = cli("import", bundle, "--store", b)
    assert done.returncode == 0, done.stderr
    assert f"imported run {run_id}" in done.stdout
    assert replay(b)[0] == recorded
    assert cli("--store", b, "import", bundle).returncode == 0  # the same again: no-op

    trace = tmp_path / "trace.csv"
    done = cli("--store", a, "export", run_id, "-o", trace)
    assert done.returncode == 0 and trace.exists()

    for usage in (["export", run_id], ["export", run_id, "-o", trace, "--bundle", bundle],
                  ["export", run_id, "-o", trace, "--include-secrets"], ["import"]):  # fmt: skip
        done = cli("--store", a, *usage)
        assert done.returncode == 2, (usage, done.stderr)

    bad = rewrite(bundle, tmp_path / "bad.zip", _tamper)
    done = cli("--store", tmp_path / "c", "import", bad)
    assert done.returncode == 1
    assert "recorder: error: bundle" in done.stderr and "not to its name" in done.stderr

    done = cli("--store", a, "diff", run_id, run.run_id)
    assert done.returncode == 0, done.stderr
    assert "first divergence" in done.stdout and "seq 0:" in done.stdout
    done = cli("--store", a, "diff", run_id, "nope")
    assert done.returncode == 1 and "no run named 'nope'" in done.stderr


# -- a real browser run ------------------------------------------------------------------


@pytest.mark.browser
def test_a_browser_run_without_secrets_does_not_resume_from_a_blank_browser(
    tmp_path: Path,
) -> None:
    """A signed-in browser run is exported without its checkpoints: the session cookie
    is not in the bundle; replaying works; going live past the record needs the
    checkpoint and raises DamagedRecordError instead of browsing signed out. With
    include_secrets the same resume goes live signed in."""
    from fixtures.site import PASSWORD, FixtureSite
    from recorder.integrations.browser import aclose_browser

    async def scenario(store: Path, site: FixtureSite, *, more: bool) -> list[str]:
        async with recorder.run("browse", store=store, display=False) as run:
            page = await run.new_page()
            await page.goto(site.url + "/login")
            await page.get_by_label("Email").fill("ada@example.com")
            await page.fill("#password", PASSWORD)
            await page.locator("#sign-in").click()
            seen = [await page.locator("#signed-in-as").inner_text()]
            if more:
                await page.goto(site.url + "/account")
                seen.append(await page.locator("#signed-in-as").inner_text())
            return seen

    async def main(site: FixtureSite) -> None:
        source = tmp_path / "source"
        recorded = await scenario(source, site, more=False)
        journal = Journal(DiskStore(source))
        [run_id] = [r.run_id for r in journal.list_runs()]
        refs = {s.meta["checkpoint"] for s in journal.steps(run_id) if "checkpoint" in s.meta}
        cookies = [c["value"] for r in refs for c in json.loads(journal.blob(r))["cookies"]]
        assert cookies and all(len(c) >= 8 for c in cookies)

        # The typed password's step keeps its real request in a blob withheld likewise.
        hidden = {s.meta["hidden"] for s in journal.steps(run_id) if "hidden" in s.meta}
        assert len(hidden) == 1
        plain = export_bundle(run_id, tmp_path / "plain.zip", store=source)
        assert set(read_manifest(plain)["withheld"]) == refs | hidden
        for cookie in cookies:
            assert cookie.encode() not in unzipped(plain)
        target = tmp_path / "plain-store"
        import_bundle(plain, store=target)
        assert await scenario(target, site, more=False) == recorded  # replay: no browser
        with pytest.raises(
            DamagedRecordError, match=r"checkpoint needs blob sha256:.*exported without secrets"
        ):
            await scenario(target, site, more=True)

        secret = export_bundle(run_id, tmp_path / "secret.zip", store=source,
                               include_secrets=True)  # fmt: skip
        target = tmp_path / "secret-store"
        import_bundle(secret, store=target)
        assert await scenario(target, site, more=True) == [*recorded, recorded[0]]
        await aclose_browser()

    with FixtureSite() as site:
        asyncio.run(main(site))
