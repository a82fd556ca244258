"""Agents for tests/integration/test_dask_engine.py, in a module the Dask workers import
by name (LocalCluster workers start with the test process's ``sys.path``).

Every agent takes what it needs (the LLM server's and the site's addresses) in its
input, so that the same function serves every test.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from typing import Any

import litellm

import recorder

MODEL = "openai/gpt-4o-mini"


def _llm(base_url: str) -> dict[str, Any]:
    return {"model": MODEL, "api_base": base_url, "api_key": "sk-test", "num_retries": 0}


def _notify(site: str, key: str, text: str) -> int:
    data = urllib.parse.urlencode({"key": key, "text": text}).encode()
    with urllib.request.urlopen(f"{site}/api/notify", data=data, timeout=10) as answer:
        return int(json.loads(answer.read())["count"])


def _notified(site: str, key: str) -> bool:
    query = urllib.parse.urlencode({"key": key})
    with urllib.request.urlopen(f"{site}/api/notify?{query}", timeout=10) as answer:
        return int(json.loads(answer.read())["count"]) > 0


async def refunds(run: recorder.Run, account: dict[str, Any]) -> dict[str, Any]:
    """Ask the model about the account, notify the site once (an effect, settled by a
    check if a kill leaves it ambiguous), ask again: the agent of fanout_agent.py."""
    litellm.suppress_debug_info = True
    key, site, llm = account["id"], account["site"], _llm(account["llm"])
    ask = [{"role": "user", "content": f"summarize account {key}"}]
    first = await litellm.acompletion(messages=ask, **llm)
    summary = first.choices[0].message.content
    await run.aonce("notify", _notify, site, key, summary, check=lambda _: _notified(site, key))
    ask = [*ask, {"role": "assistant", "content": summary},
           {"role": "user", "content": f"decide a refund for {key}"}]  # fmt: skip
    second = await litellm.acompletion(messages=ask, **llm)
    return {"id": key, "summary": summary, "decision": second.choices[0].message.content}


def plain_llm(run: recorder.Run, item: dict[str, Any]) -> str:
    """A plain (sync) agent: two live LLM calls, in a worker's thread."""
    litellm.suppress_debug_info = True
    reply = ""
    for turn in range(2):
        ask = [{"role": "user", "content": f"{item['n']} turn {turn}"}]
        answer = litellm.completion(messages=ask, **_llm(item["llm"]))
        reply = str(answer.choices[0].message.content)
    return reply


async def item_page(run: recorder.Run, item: dict[str, Any]) -> dict[str, Any]:
    """Read one item page of the fixture site in a browser; say which process did, and
    how many times that process launched Chromium."""
    from recorder.integrations.browser import launch

    page = await run.new_page()
    await page.goto(f"{item['site']}/item/{item['id']}")
    title = await page.locator("#title").inner_text()
    price = await page.locator("#price").inner_text()
    return {"title": title, "price": price, "pid": os.getpid(), "launches": launch.launches}


async def stuck(run: recorder.Run, n: int) -> int:
    """Records one step, then sleeps (a test SIGKILLs its worker meanwhile)."""
    import asyncio

    await run.astep("begin", lambda v: v, n)
    await asyncio.sleep(60)
    return n


async def two_calls(run: recorder.Run, item: dict[str, Any]) -> dict[str, Any]:
    """Two live LLM calls; says which worker process made them."""
    litellm.suppress_debug_info = True
    reply = ""
    for turn in range(2):
        ask = [{"role": "user", "content": f"{item['n']} turn {turn}"}]
        answer = await litellm.acompletion(messages=ask, **_llm(item["llm"]))
        reply = str(answer.choices[0].message.content)
    return {"reply": reply, "pid": os.getpid()}
