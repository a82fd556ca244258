"""A fan-out of an LLM agent with one side effect per child, run as its own process by
tests/integration/test_fanout_live.py (which SIGKILLs it part-way).

    python tests/integration/fanout_agent.py STORE LLM_BASE_URL SITE_URL N

Each child asks the model twice about its account and posts one notification to the
fixture site (an effect: ``run.once`` with a check, so a kill inside it is settled by
asking the site). It prints ``done KEY`` when its agent returns and, at the end, the
fan-out's rows as one JSON line ``ROWS [...]``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.parse
import urllib.request
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

import recorder

MODEL = "openai/gpt-4o-mini"


def make_agent(base_url: str, site: str) -> Any:
    llm = {"model": MODEL, "api_base": base_url, "api_key": "sk-test", "num_retries": 0}

    def notify(key: str, text: str) -> int:
        data = urllib.parse.urlencode({"key": key, "text": text}).encode()
        with urllib.request.urlopen(f"{site}/api/notify", data=data, timeout=10) as answer:
            return int(json.loads(answer.read())["count"])

    def notified(key: str) -> bool:
        query = urllib.parse.urlencode({"key": key})
        with urllib.request.urlopen(f"{site}/api/notify?{query}", timeout=10) as answer:
            return int(json.loads(answer.read())["count"]) > 0

    async def agent(run: recorder.Run, account: dict[str, Any]) -> dict[str, Any]:
        key = account["id"]
        ask = [{"role": "user", "content": f"summarize account {key}"}]
        first = await litellm.acompletion(messages=ask, **llm)
        summary = first.choices[0].message.content
        await run.aonce("notify", notify, key, summary, check=lambda _: notified(key))
        ask = [*ask, {"role": "assistant", "content": summary},
               {"role": "user", "content": f"decide a refund for {key}"}]  # fmt: skip
        second = await litellm.acompletion(messages=ask, **llm)
        print(f"done {key}", flush=True)
        return {"id": key, "summary": summary, "decision": second.choices[0].message.content}

    return agent


def main() -> None:
    store, base_url, site, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    litellm.suppress_debug_info = True
    accounts = [{"id": f"acct-{i:02d}"} for i in range(count)]
    fan = recorder.fan_out(make_agent(base_url, site), accounts, name="refunds",
                           key=lambda a: a["id"], concurrency=3, store=store)  # fmt: skip
    df = asyncio.run(_drive(fan))
    rows = df[["key", "run", "status", "result", "llm_calls", "error"]].to_dict("records")
    print("ROWS " + json.dumps(rows), flush=True)


async def _drive(fan: recorder.FanOut) -> Any:
    return await fan


if __name__ == "__main__":
    main()
