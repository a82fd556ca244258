"""Write the notebooks in ``notebooks/`` (without outputs) from the cells below.

    .venv/bin/python scripts/make_notebooks.py

The notebooks are generated so that they stay short, reviewed as code, and in step
with the API; ``tests/integration/test_notebooks.py`` executes each one on a real
kernel. Every notebook starts the fixture servers itself (127.0.0.1 only) and records
into a store next to it (``notebooks/.recorder``, ignored by git; ``$RECORDER_DIR``
wins), so "restart the kernel and run all" resumes from what was recorded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

SETUP = """\
import os, sys
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"   # litellm's cost map from the package
sys.path.insert(0, os.path.abspath(".."))              # the repository, for fixtures/
os.environ.setdefault("RECORDER_DIR", os.path.abspath(".recorder"))  # survives a restart
import litellm, recorder
litellm.suppress_debug_info = True"""

QUICKSTART = [
    new_markdown_cell(
        "# Quickstart: record, interrupt, resume\n\n"
        "An LLM loop runs inside `recorder.run(...)`. It is interrupted half-way (the "
        "stop button raises `KeyboardInterrupt`); running the same cell again replays "
        "the finished calls from the record, in microseconds and for free, and goes live "
        "where the record ends."
    ),
    new_code_cell(
        SETUP
        + """
from fixtures.llm_server import LLMServer
server = LLMServer(mode="echo").start()       # an OpenAI-compatible model on 127.0.0.1
llm = dict(model="openai/gpt-4o-mini", api_base=server.base_url, api_key="sk-local",
           num_retries=0)
%load_ext recorder"""
    ),
    new_code_cell("""\
def ask(i):
    reply = litellm.completion(messages=[{"role": "user", "content": f"Idea #{i} for refunds"}],
                               temperature=0.7, seed=i, **llm)
    return reply.choices[0].message.content

try:
    with recorder.run("quickstart", inputs={"topic": "refunds"}) as run:
        ideas = []
        for i in range(6):
            ideas.append(ask(i))
            if i == 2:
                raise KeyboardInterrupt   # what the stop button does, half-way
except KeyboardInterrupt:
    print(f"interrupted after {run.stats.live} live calls; the model served {server.requests}")"""),
    new_markdown_cell("Run the same loop again: three calls replay, three go live."),
    new_code_cell("""\
%%record quickstart --inputs {"topic": "refunds"}
ideas = [ask(i) for i in range(6)]
stats = run.stats
print(f"replayed {stats.replayed}, live {stats.live}; the model served {server.requests}")"""),
    new_markdown_cell("A third run is a pure replay: no call reaches the model."),
    new_code_cell("""\
%%record quickstart --inputs {"topic": "refunds"}
again = [ask(i) for i in range(6)]
assert again == ideas and run.stats.live == 0
run.to_dataframe()[["attempt", "seq", "kind", "status", "duration_s", "recorded_duration_s"]]"""),
    new_markdown_cell("Every call of every attempt, and the detail of the one you select:"),
    new_code_cell('recorder.show("quickstart")'),
    new_markdown_cell(
        "The store lives next to this notebook (`notebooks/.recorder`), so it survives the "
        "kernel. **Restart the kernel and run all**: every call above replays from it (the "
        "second cell's view says `0 live`), the model serves nothing, and the run browser "
        "lists one more attempt per cell. Delete `notebooks/.recorder` to start over."
    ),
    new_code_cell("server.stop()"),
]

BROWSER = [
    new_markdown_cell(
        "# Resume a crashed browser agent\n\n"
        "The agent in `fixtures/agent.py` books a flight on a local site: it observes the "
        "page, asks the model for the next tool call, acts. Its process is killed with "
        "SIGKILL after a few turns; the notebook then resumes the same run: the finished "
        "turns replay with no LLM call and no browser work, the browser is restored from "
        "the last checkpoint (signed-in cookie, URL), and the order is placed exactly once."
    ),
    new_code_cell(
        SETUP
        + """
import json, signal, subprocess
from fixtures.agent import TASK, book_flight, policy
from fixtures.llm_server import LLMServer
from fixtures.site import FixtureSite
site = FixtureSite(preferred_port=8731).start()  # the same URLs after a kernel restart
server = LLMServer(policy).start()
model = "openai/fixture-agent"
llm = dict(model=model, api_base=server.base_url, api_key="sk-local", num_retries=0)"""
    ),
    new_code_cell("""\
# The agent, in a process of its own, killed after its fifth turn.
child = subprocess.Popen(
    [sys.executable, "-m", "fixtures.demo", "--agent", site.url, server.base_url,
     os.environ["RECORDER_DIR"], model],
    cwd="..", stdout=subprocess.PIPE, text=True)
for line in child.stdout:
    if line.startswith("TURN 5 "):
        child.send_signal(signal.SIGKILL)
        break
child.wait()
print("killed:", child.returncode == -signal.SIGKILL, "| orders so far:", len(site.orders))"""),
    new_code_cell("""\
requests_before = site.requests
async with recorder.run("book-flight", inputs={"task": TASK}) as run:
    result = await book_flight(run, site.url, llm)
print(result)
stats = run.stats
print(f"replayed {stats.replayed}, live {stats.live}; orders placed: {len(site.orders)}")"""),
    new_code_cell("""\
trace = run.to_dataframe()
trace[trace.attempt == trace.attempt.max()][["seq", "kind", "name", "status", "url"]].head(12)"""),
    new_code_cell("site.stop(); server.stop()"),
]

DATAFRAMES = [
    new_markdown_cell(
        "# Traces as DataFrames\n\n"
        "Every step call is a row: kind, status, durations, model, tokens, cost. This "
        "notebook records a small agent twice (live, then replayed) and looks at where "
        "the time went and what the replay saved."
    ),
    new_code_cell(
        SETUP
        + """
import pandas as pd
import matplotlib.pyplot as plt
%matplotlib inline
from fixtures.llm_server import LLMServer
server = LLMServer(mode="echo", delay_s=0.05).start()
llm = dict(model="openai/gpt-4o-mini", api_base=server.base_url, api_key="sk-local",
           num_retries=0)

def agent(run):
    notes = []
    for i in range(8):
        reply = litellm.completion(messages=[{"role": "user", "content": f"Step {i}"}], **llm)
        notes.append(run.step("tidy", str.strip, reply.choices[0].message.content))
    return notes

for _ in range(2):
    with recorder.run("dataframes") as run:
        agent(run)
trace = recorder.load("dataframes").to_dataframe()
trace[["attempt", "seq", "kind", "status", "duration_s", "recorded_duration_s",
       "prompt_tokens", "completion_tokens", "cost_usd"]].head()"""
    ),
    new_code_cell("""\
by = trace.groupby(["attempt", "kind"]).agg(calls=("seq", "count"), seconds=("duration_s", "sum"))
by"""),
    new_code_cell("""\
saved = trace[trace.status == "replayed"]
summary = pd.Series({"live run (s)": trace[trace.attempt == 1].duration_s.sum(),
                     "replay (s)": trace[trace.attempt == 2].duration_s.sum(),
                     "saved by replay (s)": saved.recorded_duration_s.sum()})
ax = summary.plot.bar(rot=0, title="Where the time went, and what replay saved")
ax.set_ylabel("seconds")
plt.tight_layout()
summary"""),
    new_code_cell("server.stop()"),
]

EFFECTS = [
    new_markdown_cell(
        "# Side effects and approvals\n\n"
        "`run.once` records intent before an effect and its result after it, so a re-run "
        "never repeats it silently. An effect interrupted inside is *ambiguous*: the run "
        "stops and asks. `run.wait_for` suspends a run until a human sends a signal."
    ),
    new_code_cell(
        SETUP
        + """
sent = []
def send_invoice(customer, *, idempotency_key):
    sent.append(idempotency_key)            # a real API would de-duplicate on this key
    return {"invoice": len(sent), "customer": customer}"""
    ),
    new_code_cell("""\
for _ in range(2):
    with recorder.run("billing") as run:
        invoice = run.once("invoice", send_invoice, "ACME")
print(invoice, "| sent", len(sent), "time(s)")"""),
    new_markdown_cell("An effect interrupted inside it: did the invoice go out?"),
    new_code_cell("""\
def send_then_crash(customer, *, idempotency_key):
    send_invoice(customer, idempotency_key=idempotency_key)
    raise KeyboardInterrupt                 # the kernel died right after the API call

try:
    with recorder.run("billing-2") as run:
        run.once("invoice", send_then_crash, "Globex")
except KeyboardInterrupt:
    pass
try:
    with recorder.run("billing-2") as run:
        run.once("invoice", send_invoice, "Globex")
except recorder.AmbiguousEffectError as error:
    print(type(error).__name__, "-", str(error)[:160], "...")"""),
    new_code_cell("""\
def already_sent(key):                      # your own check, e.g. a lookup in the billing API
    return key in sent

with recorder.run("billing-2") as run:
    run.once("invoice", send_invoice, "Globex", check=already_sent)
print("sent", len(sent), "invoices in all: none twice")"""),
    new_markdown_cell("A durable wait: the run suspends until someone approves."),
    new_code_cell("""\
async def publish():
    async with recorder.run("publish") as run:
        draft = run.step("draft", str.title, "quarterly report")
        approval = await run.wait_for("approval")
        return run.once("publish", lambda d, ok: f"published {d} ({ok})", draft, approval)
    return None                              # suspended: with/async with ended it cleanly

print(await publish(), recorder.load("publish").status)"""),
    new_code_cell("""\
# The same from a shell: recorder signal publish approval "approved by Ada"
recorder.signal("publish", "approval", "approved by Ada")
print(await publish())"""),
    new_markdown_cell("`%%record` wraps a cell in a run; a cell that awaits gets `async with`."),
    new_code_cell("%load_ext recorder"),
    new_code_cell("""\
%%record async-cell --inputs {"n": 21}
doubled = await run.astep("double", lambda x: 2 * x, 21)
print(doubled, run.stats)"""),
]

FAN_OUT = [
    new_markdown_cell(
        "# Fan out: one agent over 20 passengers, killed and resumed\n\n"
        "The flight-booking agent of `fixtures/agent.py` runs once per passenger, each "
        "passenger its own durable run, four at a time. A first attempt runs in a process "
        "of its own and is killed with SIGKILL once six children finished. The same "
        "fan-out then runs here, in the kernel, with its live view: the six come back "
        "from the record with no LLM call and no browser, the children cut short resume "
        "from their own records, and the rest start. Every order is placed exactly once."
    ),
    new_code_cell(
        SETUP
        + """
import signal, subprocess
from fixtures.agent import book_flight, policy, task_for
from fixtures.demo import FAN_NAME, ORDER_TURN, booking_key, bookings
from fixtures.llm_server import LLMServer
from fixtures.site import FixtureSite
site = FixtureSite(preferred_port=8732).start()  # the same URLs after a kernel restart
server = LLMServer(policy).start()
model = "openai/fixture-agent"
llm = dict(model=model, api_base=server.base_url, api_key="sk-local", num_retries=0)
passengers = bookings(20)"""
    ),
    new_code_cell("""\
# The fan-out in a process of its own, SIGKILLed once six children finished (and no
# child is about to place its order: a kill inside that click would leave an effect
# whose outcome is unknown, which the re-run reports instead of repeating).
child = subprocess.Popen(
    [sys.executable, "-m", "fixtures.demo", "--fan-agent", site.url, server.base_url,
     os.environ["RECORDER_DIR"], model, str(len(passengers))],
    cwd="..", stdout=subprocess.PIPE, text=True)
done, turns = [], {}
for line in child.stdout:
    word, key, *turn = line.split()
    if word == "TURN":
        turns[key] = int(turn[0])
    elif word == "DONE":
        done.append(key)
    if len(done) >= 6 and ORDER_TURN - 1 not in turns.values():
        child.send_signal(signal.SIGKILL)
        break
child.wait()
calls_before = server.requests
print(f"killed: {child.returncode == -signal.SIGKILL} | done: {', '.join(done)} | "
      f"orders so far: {len(site.orders)} | LLM calls so far: {calls_before}")"""),
    new_code_cell("""\
async def book(run, booking):
    task = task_for(booking["passenger"], booking["seats"])
    return await book_flight(run, site.url, llm, task=task,
                             effects={"#place-order": "place-order"})

fan = recorder.fan_out(book, passengers, name=FAN_NAME, key=booking_key, concurrency=4)
df = await fan
df[["key", "status", "attempts", "llm_calls", "live_llm_calls", "duration_s"]]"""),
    new_code_cell("""\
orders = [o["name"] for o in site.orders]
print(df.status.value_counts().to_dict())
print(f"live LLM calls in this cell: {server.requests - calls_before} "
      f"of {int(df.llm_calls.sum())}")
print("each passenger's order placed exactly once:",
      sorted(orders) == sorted(b["passenger"] for b in passengers))"""),
    new_markdown_cell(
        "Any child opens in the run browser: its attempts, steps, LLM messages and "
        "screenshots."
    ),
    new_code_cell("fan.show(df.key[0])"),
    new_code_cell("site.stop(); server.stop()"),
]

ALL = {
    "quickstart.ipynb": QUICKSTART,
    "browser_agent.ipynb": BROWSER,
    "dataframes.ipynb": DATAFRAMES,
    "effects.ipynb": EFFECTS,
    "fan_out.ipynb": FAN_OUT,
}


def main() -> int:
    NOTEBOOKS.mkdir(exist_ok=True)
    for name, cells in ALL.items():
        book = new_notebook(cells=cells)
        for number, cell in enumerate(book.cells):  # stable ids: regenerating changes nothing
            cell["id"] = f"{Path(name).stem}-{number}"
        book.metadata["kernelspec"] = {
            "name": "python3", "display_name": "Python 3", "language": "python",
        }  # fmt: skip
        book.metadata["language_info"] = {"name": "python"}
        nbformat.validate(book)
        nbformat.write(book, NOTEBOOKS / name)
        print(f"wrote notebooks/{name} ({len(cells)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
