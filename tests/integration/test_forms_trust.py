"""A prebuilt form (the state of a response a fast replay loads without validation) is
derived from the recorded JSON and never trusted alone: ``recorder verify`` checks each
form against its record, and an import drops the forms a bundle brings (the first
replay builds from the JSON and writes its own)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import litellm
import pytest

import recorder
from recorder.bundle import export_bundle, import_bundle
from recorder.journal import Journal
from recorder.keys import hash_bytes
from recorder.store import DiskStore

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Summarize ticket 7"}]
CLI = Path(sys.executable).with_name("recorder")


def forge_form(store: Path, run_id: str, truth: str) -> None:
    """Replace the run's prebuilt form by one that says something else, with every hash
    fixed up (the blob's name, the step record's reference and seal)."""
    journal = Journal(DiskStore(store))
    step = next(s for s in journal.steps(run_id) if s.prebuilt)
    assert step.prebuilt is not None
    form = journal.blob(step.prebuilt["ref"])
    assert truth.encode() in form
    forged = form.replace(truth.encode(), b"forged answer")
    ref = hash_bytes(forged)
    blobs = (*(b for b in step.blobs if b != step.prebuilt["ref"]), ref)
    changed = dataclasses.replace(step, prebuilt={**step.prebuilt, "ref": ref}, blobs=blobs)
    journal.put_steps(run_id, [changed], {ref: forged})


def test_a_forged_form_is_found_by_verify_and_dropped_by_import(
    tmp_path: Path, llm: dict[str, Any]
) -> None:
    source = tmp_path / "source"
    with recorder.run("forms", store=source, display=False) as run:
        truth = litellm.completion(messages=MESSAGES, **llm).choices[0].message.content
    forge_form(source, run.run_id, truth)

    checked = subprocess.run([str(CLI), "--store", str(source), "verify"], capture_output=True,
                             text=True)  # fmt: skip
    assert checked.returncode == 1, checked.stdout
    assert "prebuilt form" in checked.stdout and "differs from what its recorded" in checked.stdout

    bundle = export_bundle(run.run_id, tmp_path / "forms.zip", store=DiskStore(source))
    target = tmp_path / "target"
    import_bundle(bundle, store=DiskStore(target))
    assert not any(s.prebuilt for s in Journal(DiskStore(target)).steps(run.run_id))
    for _ in range(2):  # the first replay builds from the JSON, the second loads its own form
        with recorder.run("forms", store=target, mode="replay", display=False) as again:
            replayed = litellm.completion(messages=MESSAGES, **llm).choices[0].message.content
        assert replayed == truth
        assert again.stats.live == 0
    assert all(s.prebuilt for s in Journal(DiskStore(target)).steps(run.run_id))
    clean = subprocess.run([str(CLI), "--store", str(target), "verify"], capture_output=True,
                           text=True)  # fmt: skip
    assert clean.returncode == 0, clean.stdout
