"""Portable bundles: one file holding everything a run needs to replay in another store.

A bundle is a zip archive (no pickle, nothing executable) laid out as::

    manifest.json                                  format, versions, counts, sha256 of each member
    run.json                                       the RunRecord
    attempts/<attempt:06d>.json                    AttemptRecord
    traces/<attempt:06d>.json                      the trace of an ended attempt
    events/<attempt:06d>/<seq:08d>[.<try:04d>].json  TraceEvent of a failed call
    steps/<generation:04d>/<hex>.<occ:06d>.json    StepRecord (key sha256:<hex>), all generations
    intents/<generation:04d>/<hex>.<occ:06d>.json  an effect that started and has no record
    blobs/<hex>                                    bytes whose sha256 is <hex>

Members hold the store's bytes unchanged. Browser checkpoints (cookies, web storage)
are *withheld* unless ``include_secrets=True``: the manifest lists them under
``withheld`` and an import writes a ``withheld/<run_id>/<ref>`` marker for each, so a
later live step that must restore a browser from one fails (DamagedRecordError) instead
of going live from a blank browser.

:func:`import_bundle` treats the file as hostile: everything is checked (layout, names,
file types, sizes, hashes, records, references) before the first write, and the run
arrives in one atomic store write. ``docs/bundles.md`` is the contract.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import stat
import tempfile
import time
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import records
from .errors import ConfigError, RecorderError, StoreError
from .history import find_run
from .journal import Journal, step_label
from .keys import dumps, hash_bytes, is_tagged_hash
from .options import validate_name
from .records import RECORD_FORMAT, AttemptRecord, RunRecord, StepRecord, TraceEvent
from .redaction import SECRET_BLOB_FIELDS
from .stores import Store, open_store

__all__ = [
    "BUNDLE_FORMAT",
    "MAX_BUNDLE_BYTES",
    "MAX_BUNDLE_MEMBERS",
    "BundleError",
    "export_bundle",
    "import_bundle",
    "read_manifest",
    "withheld_markers",
]

BUNDLE_FORMAT = 1
MAX_BUNDLE_BYTES = 2 * 2**30
"""Default limit on the uncompressed bytes of all members of a bundle being imported."""
MAX_BUNDLE_MEMBERS = 200_000
"""Default limit on the number of members of a bundle being imported."""
_MAX_RATIO = 200
"""A member over 1 MiB that inflates more than this many times is refused (zip bomb)."""
_MANIFEST = "manifest.json"
_RUN_ID = re.compile(r"[^/\\\x00-\x1f\x7f]{1,220}@[0-9a-f]{12}")
_EPOCH = (1980, 1, 1, 0, 0, 0)
_HEX = r"[0-9a-f]{64}"
_LAYOUT = {
    "run": re.compile(r"run\.json"),
    "attempt": re.compile(r"attempts/(\d{6})\.json"),
    "trace": re.compile(r"traces/(\d{6})\.json"),
    "event": re.compile(r"events/(\d{6})/(\d{8}(?:\.\d{4})?)\.json"),
    "step": re.compile(rf"steps/(\d{{4}})/({_HEX})\.(\d{{6}})\.json"),
    "intent": re.compile(rf"intents/(\d{{4}})/({_HEX})\.(\d{{6}})\.json"),
    "blob": re.compile(rf"blobs/({_HEX})"),
}


class BundleError(StoreError):
    """A bundle cannot be written or is refused on import (damaged, hostile, too large,
    from a newer format, or for a run the store already holds differently)."""


# -- export ----------------------------------------------------------------------------


def _secret_refs(steps: list[StepRecord]) -> dict[str, list[str]]:
    """Blobs holding secrets (checkpoints: cookies, web storage; a step's hidden
    request, fields and result) and the steps that refer to them."""
    found: dict[str, list[str]] = {}
    for step in steps:
        for ref in (step.meta.get(name) for name in SECRET_BLOB_FIELDS):
            if isinstance(ref, str) and is_tagged_hash(ref):
                found.setdefault(ref, []).append(step_label(step))
    return found


def _needed_refs(step: StepRecord) -> list[str]:
    refs = list(step.blobs)
    refs += [r for r in (step.request_ref, step.result_ref) if r is not None]
    return list(dict.fromkeys(refs))


def export_bundle(
    run_name_or_id: str,
    path: str | os.PathLike[str],
    *,
    store: Store | str | os.PathLike[str] | None = None,
    include_secrets: bool = False,
) -> Path:
    """Write run ``run_name_or_id`` (a run id, or the latest run of that name) of
    ``store`` to the bundle file ``path``, atomically (a temporary file in the same
    directory, then a rename); return the path.

    The bundle holds the run record, every attempt, trace and failed-call event, the
    step records of *every* generation, intent markers, and every blob those records
    need, except browser checkpoints unless ``include_secrets`` (they hold cookies and
    web storage). A missing or altered blob raises DamagedRecordError naming the step.
    """
    journal = Journal(open_store(store, create=False))
    run_id = find_run(journal, run_name_or_id)
    st = journal.store
    members: dict[str, bytes] = {}
    raw_run = st.get("run/" + run_id)
    assert raw_run is not None  # find_run found it
    members["run.json"] = raw_run
    counts = {"attempts": 0, "traces": 0, "events": 0, "steps": 0, "intents": 0, "blobs": 0}
    for key, raw in st.scan(f"attempt/{run_id}/"):
        members[f"attempts/{key.rsplit('/', 1)[1]}.json"] = raw
        counts["attempts"] += 1
    for key, raw in st.scan(f"trace/{run_id}/"):
        members[f"traces/{key.rsplit('/', 1)[1]}.json"] = raw
        counts["traces"] += 1
    for key, raw in st.scan(f"event/{run_id}/"):
        attempt, seq = key.split("/")[2:4]
        members[f"events/{attempt}/{seq}.json"] = raw
        counts["events"] += 1
    steps: list[StepRecord] = []
    for key, raw in st.scan(f"step/{run_id}/"):
        generation, content_key, occurrence = key.split("/")[2:5]
        members[f"steps/{generation}/{content_key[7:]}.{occurrence}.json"] = raw
        steps.append(records.load(StepRecord, raw, where=key))
        counts["steps"] += 1
    for key, raw in st.scan(f"intent/{run_id}/"):
        generation, content_key, occurrence = key.split("/")[2:5]
        members[f"intents/{generation}/{content_key[7:]}.{occurrence}.json"] = raw
        counts["intents"] += 1
    secret = {} if include_secrets else _secret_refs(steps)
    for step in steps:
        for ref in _needed_refs(step):
            name = "blobs/" + ref[7:]
            if ref in secret or name in members:
                continue
            members[name] = journal.blob(ref, step=f"{step_label(step)} of run {run_id}")
            counts["blobs"] += 1
    counts["withheld"] = len(secret)

    from . import __version__

    manifest = {
        "bundle_format": BUNDLE_FORMAT,
        "record_format": RECORD_FORMAT,
        "recorder_version": __version__,
        "run_id": run_id,
        "exported_at": time.time(),
        "include_secrets": include_secrets,
        "counts": counts,
        "members": {name: hash_bytes(data) for name, data in sorted(members.items())},
        "withheld": {
            ref: {"reason": "browser checkpoint (cookies, web storage)", "steps": labels}
            for ref, labels in sorted(secret.items())
        },
    }
    members[_MANIFEST] = json.dumps(manifest, indent=1, sort_keys=True).encode()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for name in [_MANIFEST, *sorted(n for n in members if n != _MANIFEST)]:
                    info = zipfile.ZipInfo(name, date_time=_EPOCH)
                    info.external_attr = (stat.S_IFREG | 0o600) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    archive.writestr(info, members[name])
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return target


# -- import ----------------------------------------------------------------------------


@dataclass
class _Checked:
    """A bundle that passed every check: the store writes that import it."""

    run: RunRecord
    manifest: dict[str, Any]
    puts: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)


def _refuse(path: Path, problem: str) -> BundleError:
    return BundleError(
        f"bundle {path} is refused: {problem}. Nothing was written to the store; export "
        "the run again from its source store, or ask for a bundle that is not damaged."
    )


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of bundle ``path`` (parsed, not checked against the members)."""
    file = Path(path)
    try:
        with zipfile.ZipFile(file) as archive:
            return _manifest(file, archive.read(_MANIFEST))
    except (zipfile.BadZipFile, KeyError, OSError) as error:
        raise _refuse(file, f"it is not a readable bundle ({error})") from error


def _manifest(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError as error:
        raise _refuse(path, f"{_MANIFEST} is not JSON ({error})") from error
    if type(doc) is not dict:
        raise _refuse(path, f"{_MANIFEST} is not a JSON object")
    found = doc.get("bundle_format")
    if type(found) is not int or found < 1:
        raise _refuse(path, f"{_MANIFEST} has no valid bundle_format (found {found!r})")
    if found > BUNDLE_FORMAT:
        raise BundleError(
            f"bundle {path} has bundle_format {found} (written by recorder "
            f"{doc.get('recorder_version', '?')}); this recorder reads bundle_format "
            f"{BUNDLE_FORMAT}. Upgrade recorder to import it. Nothing was written."
        )
    for name, kind in (("run_id", str), ("members", dict), ("withheld", dict)):
        if type(doc.get(name)) is not kind:
            raise _refuse(path, f"{_MANIFEST} has no valid {name!r}")
    return doc


def _check_info(path: Path, info: zipfile.ZipInfo) -> str:
    """The layout kind of a member, or a refusal naming what is wrong with it."""
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise _refuse(path, f"member {name!r} has an absolute path")
    if ".." in name.replace("\\", "/").split("/") or "\\" in name or "\x00" in name:
        raise _refuse(path, f"member {name!r} leaves the bundle (a '..' or '\\' in its path)")
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if info.is_dir() or (mode and kind != stat.S_IFREG):
        what = "a symbolic link" if kind == stat.S_IFLNK else "not a regular file"
        raise _refuse(path, f"member {name!r} is {what}; a bundle holds regular files only")
    if mode & 0o7111:
        raise _refuse(path, f"member {name!r} is marked executable (mode {oct(mode & 0o7777)})")
    if info.flag_bits & 0x1:
        raise _refuse(path, f"member {name!r} is encrypted")
    if name == _MANIFEST:
        return "manifest"
    for layout, pattern in _LAYOUT.items():
        if pattern.fullmatch(name):
            return layout
    raise _refuse(
        path,
        f"member {name!r} is not part of the bundle layout (manifest.json, run.json, "
        "attempts/, traces/, events/, steps/, intents/, blobs/); see docs/bundles.md",
    )


def _read_members(
    path: Path, *, max_bytes: int, max_members: int
) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise _refuse(path, f"it is not a readable zip file, or is truncated ({error})") from error
    with archive:
        infos = archive.infolist()
        if len(infos) > max_members:
            raise _refuse(
                path, f"it has {len(infos):,} members, more than the limit of {max_members:,}"
            )
        total = sum(i.file_size for i in infos)
        if total > max_bytes:
            raise _refuse(
                path,
                f"its members inflate to {total:,} bytes, more than the limit of "
                f"{max_bytes:,} (max_bytes=)",
            )
        # Many members each under the per-member bound below still add up: the whole
        # may not inflate more than _MAX_RATIO times the file (past a first MiB).
        size = path.stat().st_size
        if total > _MAX_RATIO * size + 2**20:
            raise _refuse(
                path,
                f"its members inflate to {total:,} bytes from a file of {size:,} (more "
                f"than {_MAX_RATIO}x: a zip bomb?)",
            )
        kinds: dict[str, str] = {}
        for info in infos:
            if info.filename in kinds:
                raise _refuse(path, f"member {info.filename!r} appears twice")
            kinds[info.filename] = _check_info(path, info)
            if info.file_size > 2**20 and info.file_size > _MAX_RATIO * max(info.compress_size, 1):
                raise _refuse(
                    path,
                    f"member {info.filename!r} inflates {info.compress_size:,} bytes to "
                    f"{info.file_size:,} (more than {_MAX_RATIO}x: a zip bomb?)",
                )
        if _MANIFEST not in kinds:
            raise _refuse(path, f"it has no {_MANIFEST}")
        data: dict[str, tuple[str, bytes]] = {}
        try:
            for info in infos:
                content = _inflate(path, archive, info)
                data[info.filename] = (kinds[info.filename], content)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as error:
            raise _refuse(path, f"a member is damaged or truncated ({error})") from error
    manifest = _manifest(path, data.pop(_MANIFEST)[1])
    return manifest, data


_CHUNK = 2**20


def _inflate(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, read a MiB at a time and never past its declared size (which
    the limits were checked against); zipfile checks the CRC at the end."""
    parts: list[bytes] = []
    left = info.file_size
    with archive.open(info) as member:
        while True:
            chunk = member.read(min(_CHUNK, left + 1))
            if not chunk:
                break
            left -= len(chunk)
            if left < 0:
                raise _refuse(path, f"member {info.filename!r} is longer than declared")
            parts.append(chunk)
    if left:
        raise _refuse(path, f"member {info.filename!r} is shorter than declared")
    return b"".join(parts)


def _load(path: Path, cls: type[Any], raw: bytes | dict[str, Any], name: str) -> Any:
    try:
        return records.load(cls, raw, where=f"bundle member {name}")
    except RecorderError as error:
        raise _refuse(path, str(error)) from error
    except (ValueError, TypeError, AttributeError) as error:
        raise _refuse(path, f"member {name!r} is not a valid {cls.__name__} ({error})") from error


def _check(path: Path, manifest: dict[str, Any], data: dict[str, tuple[str, bytes]]) -> _Checked:
    listed: dict[str, Any] = manifest["members"]
    for name, (_, content) in sorted(data.items()):
        if name not in listed:
            raise _refuse(path, f"member {name!r} is not listed in {_MANIFEST}")
        found = hash_bytes(content)
        if listed[name] != found:
            raise _refuse(
                path,
                f"member {name!r} does not match its hash: {_MANIFEST} says {listed[name]}, "
                f"the content hashes to {found}",
            )
    missing = sorted(set(listed) - set(data))
    if missing:
        raise _refuse(path, f"members listed in {_MANIFEST} are missing: {', '.join(missing[:5])}")
    if "run.json" not in data:
        raise _refuse(path, "it has no run.json")
    run: RunRecord = _load(path, RunRecord, data["run.json"][1], "run.json")
    run_id = run.run_id
    if run_id != manifest["run_id"] or not _RUN_ID.fullmatch(str(run_id)):
        raise _refuse(
            path, f"run.json is run {run_id!r} but {_MANIFEST} says {manifest['run_id']!r}"
        )
    _check_run(path, run)
    checked = _Checked(run=run, manifest=manifest)
    checked.puts["run/" + run_id] = data["run.json"][1]
    needed: dict[str, str] = {}
    forms: set[str] = set()
    withheld = set(manifest["withheld"])
    for name, (kind, content) in sorted(data.items()):
        match = _LAYOUT[kind].fullmatch(name)
        assert match is not None
        if kind == "blob":
            ref = "sha256:" + match[1]
            found = hash_bytes(content)
            if found != ref:
                raise _refuse(path, f"blob {name!r} hashes to {found}, not to its name")
            checked.blobs[ref] = content
        elif kind == "attempt":
            attempt: AttemptRecord = _load(path, AttemptRecord, content, name)
            if attempt.number != int(match[1]):
                raise _refuse(path, f"member {name!r} holds attempt {attempt.number}")
            checked.puts[f"attempt/{run_id}/{match[1]}"] = content
        elif kind == "trace":
            try:
                events = json.loads(content)
                assert type(events) is list
            except (ValueError, AssertionError) as error:
                raise _refuse(path, f"member {name!r} is not a list of trace events") from error
            for event in events:
                if type(event) is not dict:
                    raise _refuse(path, f"member {name!r} holds an event that is not an object")
                _load(path, TraceEvent, event, name)
            checked.puts[f"trace/{run_id}/{match[1]}"] = content
        elif kind == "event":
            _load(path, TraceEvent, content, name)
            checked.puts[f"event/{run_id}/{match[1]}/{match[2]}"] = content
        elif kind == "step":
            step: StepRecord = _load(path, StepRecord, content, name)
            if (f"{step.generation:04d}", step.key, f"{step.occurrence:06d}") != (
                match[1],
                "sha256:" + match[2],
                match[3],
            ):
                raise _refuse(path, f"member {name!r} holds another step ({step.key})")
            if step.prebuilt is not None:
                # A prebuilt form is derived from the JSON result, and a fast replay loads
                # it unchecked: one from outside is dropped, and the first replay here
                # builds from the JSON and leaves a form of its own.
                form = step.prebuilt.get("ref")
                forms.add(str(form))
                step = dataclasses.replace(
                    step, prebuilt=None, blobs=tuple(b for b in step.blobs if b != form)
                )
                content = records.dump(step)
            for ref in _needed_refs(step):
                if not is_tagged_hash(ref):
                    raise _refuse(path, f"member {name!r} refers to blob {ref!r}, not a hash")
                needed.setdefault(ref, f"{step_label(step)} ({name})")
            checked.puts[f"step/{run_id}/{match[1]}/sha256:{match[2]}/{match[3]}"] = content
        elif kind == "intent":
            try:
                assert type(json.loads(content)) is dict
            except (ValueError, AssertionError) as error:
                raise _refuse(path, f"member {name!r} is not a JSON object") from error
            checked.puts[f"intent/{run_id}/{match[1]}/sha256:{match[2]}/{match[3]}"] = content
    for ref, who in needed.items():
        if ref not in checked.blobs and ref not in withheld:
            raise _refuse(path, f"{who} needs blob {ref}, which the bundle does not hold")
    for ref in forms - set(needed):
        checked.blobs.pop(ref, None)
    extra = sorted(set(checked.blobs) - set(needed))
    if extra:
        raise _refuse(path, f"blob {extra[0]} is in the bundle but no step record needs it")
    for ref, why in manifest["withheld"].items():
        if not is_tagged_hash(ref) or ref not in needed:
            raise _refuse(path, f"{_MANIFEST} withholds {ref!r}, which no step needs")
        marker = {"run_id": run_id, "bundle": path.name, "why": why}
        checked.puts[f"withheld/{run_id}/{ref}"] = dumps(marker).encode()
    return checked


def _check_run(path: Path, run: RunRecord) -> None:
    """The run's name passes the rules a run made here passes (``validate_name``), and
    its id is that name and its inputs' hash, as :func:`recorder.run` makes it."""
    try:
        validate_name(run.name)
    except ConfigError as error:
        raise _refuse(path, f"run.json: {error}") from error
    if not is_tagged_hash(run.inputs_hash) or run.run_id != f"{run.name}@{run.inputs_hash[7:19]}":
        raise _refuse(
            path,
            f"run.json is run {run.run_id!r}, but its name {run.name!r} and inputs hash "
            f"{run.inputs_hash!r} make another id",
        )
    try:
        inputs_hash = hash_bytes(dumps(run.inputs).encode())
    except (TypeError, ValueError) as error:
        raise _refuse(path, f"run.json: its inputs are not canonical JSON ({error})") from error
    if inputs_hash != run.inputs_hash:
        raise _refuse(path, f"run.json: its inputs hash to {inputs_hash}, not to {run.inputs_hash}")


_RUN_PREFIXES = ("attempt", "trace", "event", "step", "intent", "withheld")


def import_bundle(
    path: str | os.PathLike[str],
    *,
    store: Store | str | os.PathLike[str] | None = None,
    replace: bool = False,
    max_bytes: int = MAX_BUNDLE_BYTES,
    max_members: int = MAX_BUNDLE_MEMBERS,
) -> str:
    """Import the run in bundle ``path`` into ``store``; return its run id.

    The bundle is untrusted: its format, every member's name, type, size and hash,
    every record and every blob reference are checked first, and any problem raises
    :class:`BundleError` naming it, with nothing written. The run then arrives in one
    atomic store write. A store that already holds the same run differently is refused
    unless ``replace=True`` (its records are replaced in that same write; blobs no
    other run needs are then collected). A store that holds every record of the bundle
    already (the same bundle imported before, perhaps replayed since) is left as is.
    """
    file = Path(path)
    manifest, data = _read_members(file, max_bytes=max_bytes, max_members=max_members)
    checked = _check(file, manifest, data)
    journal = Journal(open_store(store))
    st = journal.store
    run_id = checked.run.run_id
    existing: dict[str, bytes] = {}
    if st.get("run/" + run_id) is not None:
        existing["run/" + run_id] = st.get("run/" + run_id) or b""
        for prefix in _RUN_PREFIXES:
            existing.update(st.scan(f"{prefix}/{run_id}/"))
    held = all(existing.get(k) == v for k, v in checked.puts.items())
    if held and all(st.get("blob/" + r) is not None for r in checked.blobs):
        return run_id  # everything is there already (perhaps with later attempts)
    if existing and not replace:
        raise BundleError(
            f"the store {st.location} already holds run {run_id} with other records than "
            f"bundle {file}. Nothing was written: import with replace=True (`recorder "
            f"import {file.name} --replace`) to replace it, or `recorder rm {run_id}` first."
        )
    lock = None
    if existing:
        from .locks import RunLock

        lock = RunLock(journal, run_id)
        lock.acquire(time.time())  # refuses a run a live process holds
    deletes = [k for k in existing if k not in checked.puts]
    if lock is not None:
        deletes.append("lock/" + run_id)
    try:
        st.write(checked.puts, adds={"blob/" + r: d for r, d in checked.blobs.items()},
                 deletes=deletes)  # fmt: skip
    finally:
        if lock is not None and st.get("lock/" + run_id) is None:
            lock.forget()
        elif lock is not None:
            lock.release()
    if existing:
        journal.collect_garbage()
    return run_id


def withheld_markers(store: Store, run_id: str) -> Mapping[str, Any]:
    """The checkpoints a run's bundle was exported without (``ref -> why``)."""
    return {
        key.rsplit("/", 1)[1]: json.loads(raw) for key, raw in store.scan(f"withheld/{run_id}/")
    }
