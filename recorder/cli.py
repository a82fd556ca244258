"""The ``recorder`` command: list, show, export, verify and delete recorded runs, send a
signal to a run that waits for one, move a run between stores as a bundle (``export
--bundle``, ``import``) and compare two runs (``diff``).

Exit codes: 0 success, 1 a recorder error (message on stderr) or damage found by
``verify``, 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError, RecorderError, RunNotFoundError
from .history import RunHistory, find_run, run_rows
from .journal import Journal
from .locks import RunLock
from .stores import default_target, open_store, store_target

__all__ = ["main"]

_SHOW_COLUMNS = ["attempt", "seq", "kind", "name", "status", "selector", "url", "duration_s",
                 "recorded_duration_s", "model", "prompt_tokens", "completion_tokens",
                 "cost_usd", "error"]  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    store_help = (
        "the store: a directory or a postgresql:// URL (default: $RECORDER_STORE, "
        "$RECORDER_DIR or ./.recorder)"
    )
    parser = argparse.ArgumentParser(
        prog="recorder",
        description="Inspect and manage recorded agent runs. Times are UTC.",
        epilog="exit status: 0 success, 1 error or damage found, 2 usage error",
    )
    parser.add_argument("--store", metavar="DIR|URL", help=store_help)
    # --store is accepted after the command too; SUPPRESS keeps the top-level value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="DIR|URL", default=argparse.SUPPRESS, help=store_help)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("ls", parents=[common], help="list the runs in the store")
    show = commands.add_parser("show", parents=[common], help="show a run's step calls")
    show.add_argument("run", metavar="RUN", help="run name or run id (name@hash)")
    show.add_argument("--attempt", type=int, help="only this attempt")
    export = commands.add_parser(
        "export", parents=[common], help="write a run's trace, or the run as a bundle, to a file"
    )
    export.add_argument("run", metavar="RUN", help="run name or run id (name@hash)")
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("-o", "--output", metavar="FILE",
                        help="the trace: FILE.csv, FILE.parquet or FILE.jsonl")  # fmt: skip
    target.add_argument("--bundle", metavar="FILE",
                        help="the whole run (records, blobs) as one portable file")  # fmt: skip
    export.add_argument("--include-secrets", action="store_true",
                        help="with --bundle: include browser checkpoints (cookies)")  # fmt: skip
    imports = commands.add_parser(
        "import", parents=[common], help="import a run from a bundle file (checked first)"
    )
    imports.add_argument("file", metavar="FILE", help="a bundle written by export --bundle")
    imports.add_argument("--replace", action="store_true",
                         help="replace the run if the store holds it otherwise")  # fmt: skip
    diff = commands.add_parser(
        "diff", parents=[common], help="where two runs (or RUN@attempt:N attempts) diverge"
    )
    diff.add_argument("run_a", metavar="RUN_A", help="run name, run id, or RUN@attempt:N")
    diff.add_argument("run_b", metavar="RUN_B", help="run name, run id, or RUN@attempt:N")
    commands.add_parser(
        "verify", parents=[common], help="re-hash every blob and check every record"
    )
    rm = commands.add_parser("rm", parents=[common], help="delete a run and the blobs only it used")
    rm.add_argument("run", metavar="RUN", help="run name or run id (name@hash)")
    fork = commands.add_parser(
        "fork", parents=[common],
        help="make run NAME a copy of RUN's first STEP steps (they replay; the rest goes live)",
    )  # fmt: skip
    fork.add_argument("run", metavar="RUN", help="the run to fork (name or name@hash)")
    fork.add_argument("step", metavar="STEP", type=int, help="how many of its steps to keep")
    fork.add_argument("name", metavar="NAME", help="the new run's name")
    fork.add_argument("--inputs", metavar="JSON", default="null",
                      help="the new run's inputs, as JSON (default: none)")  # fmt: skip
    signal = commands.add_parser(
        "signal", parents=[common], help="send a value to a run's wait_for(NAME)"
    )
    signal.add_argument("run", metavar="RUN", help="run name or run id (name@hash)")
    signal.add_argument("name", metavar="NAME", help="the signal's name")
    signal.add_argument(
        "value", metavar="VALUE", nargs="?", default="null",
        help="JSON (true, 42, '{\"ok\": true}'); text that is not JSON is sent as a string",
    )  # fmt: skip
    return parser


def _journal(store: str | Path | None) -> Journal:
    target = store_target(store, "--store") if store else default_target()
    if isinstance(target, Path) and not target.exists():
        raise RunNotFoundError(
            f"no store at {target}: nothing has been recorded there yet (use --store DIR or "
            "URL, or set RECORDER_STORE or RECORDER_DIR)."
        )
    return Journal(open_store(target, create=False))


def _print_table(frame: object) -> None:
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    with pd.option_context("display.max_rows", None, "display.width", 200,
                           "display.max_colwidth", 48):  # fmt: skip
        print(frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.6g}"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "export" and args.include_secrets and args.bundle is None:
        parser.error("--include-secrets goes with --bundle FILE")
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except RecorderError as error:
        print(f"recorder: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `recorder show X | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "import":
        from .bundle import import_bundle, read_manifest

        # The path, not an open store: a refused bundle must not create the directory.
        path = store_target(args.store, "--store") if args.store else default_target()
        run_id = import_bundle(args.file, store=path, replace=args.replace)
        journal = _journal(path)
        manifest = read_manifest(args.file)
        counts = manifest.get("counts", {})
        withheld = len(manifest["withheld"])
        print(f"imported run {run_id} into {journal.store.location} "
              f"({counts.get('steps', '?')} step records, {counts.get('blobs', '?')} blobs"
              + (f"; {withheld} browser checkpoint(s) were withheld by the export" if withheld
                 else "") + ")")  # fmt: skip
        return 0
    journal = _journal(args.store)
    if args.command == "fork":
        from .forking import fork

        try:
            inputs = json.loads(args.inputs)
        except ValueError as error:
            raise ConfigError(f"--inputs is not JSON ({error}): {args.inputs!r}") from error
        run_id = fork(args.run, args.step, args.name, inputs=inputs, store=journal.store)
        print(f"forked run {run_id} from {args.run} at step {args.step}: run "
              f"recorder.run({args.name!r}, inputs=...) to replay them and go on")  # fmt: skip
        return 0
    if args.command == "diff":
        from .rundiff import diff, format_diff

        print(format_diff(diff(args.run_a, args.run_b, store=journal.store)))
        return 0
    if args.command == "ls":
        from .export import runs_frame

        rows = run_rows(journal)
        if not rows:
            print(f"no runs in {journal.store.location}")
            return 0
        frame = runs_frame(rows)
        for column in ("created_at", "last_activity"):
            frame[column] = frame[column].dt.strftime("%Y-%m-%d %H:%M:%SZ")
        frame["inputs"] = frame["inputs"].map(_short)
        _print_table(frame)
        _print_fan_outs(journal)
        return 0
    if args.command == "verify":
        from .call import Prebuilt, form_checker

        forms: list[Prebuilt] = []
        try:
            from .integrations.litellm import prebuilt_form
        except ImportError:  # no litellm here: its forms are left unchecked
            pass
        else:
            forms.append(prebuilt_form())
        damage = journal.verify(form_checker(journal, forms))
        blobs = len(journal.store.keys("blob/"))
        steps = len(journal.store.keys("step/"))
        for item in damage:
            print(f"DAMAGED {item}")
        if damage:
            print(f"{len(damage)} problem(s) in {journal.store.location}")
            return 1
        print(f"ok: {blobs} blobs and {steps} step records verified in {journal.store.location}")
        return 0
    run_id = find_run(journal, args.run)
    if args.command == "export" and args.bundle is not None:
        from .bundle import export_bundle, read_manifest

        path = export_bundle(
            run_id, args.bundle, store=journal.store, include_secrets=args.include_secrets
        )
        counts = read_manifest(path)["counts"]
        print(f"wrote run {run_id} to bundle {path} ({counts['steps']} step records, "
              f"{counts['blobs']} blobs, {counts['withheld']} browser checkpoint(s) "
              "withheld)")  # fmt: skip
        return 0
    if args.command == "signal":
        from .waits import signal

        try:
            value = json.loads(args.value)
        except ValueError:
            value = args.value
        number = signal(run_id, args.name, value, store=journal.store)
        print(f"sent signal {args.name!r} #{number} to run {run_id}: re-run it to go on")
        return 0
    if args.command == "rm":
        lock = RunLock(journal, run_id)
        lock.acquire(time.time())  # refuses a run a live process holds
        steps = journal.delete_run(run_id)  # deletes the lock row with the rest
        lock.forget()
        print(f"removed run {run_id} ({steps} step records)")
        return 0
    history = RunHistory.load(journal, run_id)
    frame = history.to_dataframe()
    if args.command == "export":
        from .export import write_frame

        kind = write_frame(frame, args.output)
        print(f"wrote {len(frame)} rows of run {run_id} to {args.output} ({kind})")
        return 0
    if args.attempt is None and _show_fan_out(journal, history):
        return 0
    if args.attempt is not None:
        numbers = [a.number for a in history.attempts]
        if args.attempt not in numbers:
            raise RunNotFoundError(
                f"run {run_id} has no attempt {args.attempt}; its attempts are "
                f"{', '.join(map(str, numbers)) or 'none'}."
            )
        frame = frame[frame["attempt"] == args.attempt]
    summary = history.summary()
    print(f"run {run_id}  status {summary['status']}  attempts {summary['attempts']}  "
          f"recorded steps {summary['steps']}  calls shown {len(frame)}  "
          f"inputs {_short(summary['inputs'])}")  # fmt: skip
    if frame.empty:
        print("(no step calls)")
    else:
        columns = [c for c in _SHOW_COLUMNS if c in frame.columns]
        _print_table(frame[columns])
    return 0


def _counts(statuses: list[str]) -> str:
    from collections import Counter

    return ", ".join(f"{n} {s}" for s, n in sorted(Counter(statuses).items()))


def _print_fan_outs(journal: Journal) -> None:
    """Below the runs: each fan-out (a parent run) with its children counted by status."""
    import pandas as pd

    from .fanout import children_of, is_fan_out

    rows = []
    for record in journal.list_runs():
        if is_fan_out(record.inputs):
            children = children_of(journal, record.run_id)
            statuses = [c["status"] for c in children]
            rows.append({"fan_out": record.run_id, "children": len(children),
                         "by status": _counts(statuses)})  # fmt: skip
    if rows:
        print("\nfan-outs (recorder show FAN_OUT lists the children):")
        _print_table(pd.DataFrame(rows).sort_values("fan_out"))


def _show_fan_out(journal: Journal, history: RunHistory) -> bool:
    """``show`` of a fan-out's parent run: its children, grouped by status."""
    import pandas as pd

    from .fanout import children_of, is_fan_out

    if not is_fan_out(history.run.inputs):
        return False
    children = children_of(journal, history.run.run_id)
    summary = history.summary()
    print(f"fan-out {summary['run']}  calls {summary['attempts']}  children {len(children)}"
          f"  {_counts([c['status'] for c in children]) or 'none'}")  # fmt: skip
    if not children:
        return True
    order = ["failed", "crashed", "interrupted", "suspended", "running", "not started",
             "skipped", "completed", "replayed"]  # fmt: skip
    frame = pd.DataFrame(children, columns=["status", "key", "run", "attempts", "error"])
    frame["rank"] = frame["status"].map(lambda s: order.index(s) if s in order else len(order))
    frame = frame.sort_values(["rank", "key"], kind="stable").drop(columns="rank")
    frame["error"] = frame["error"].map(lambda e: "-" if e is None else _short(str(e)))
    _print_table(frame)
    return True


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
