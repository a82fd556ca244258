"""The scripted run that tests/integration/test_crash_points.py kills at each crash point.

    python tests/integration/crash_points_agent.py SITE_URL LLM_URL STORE [RESOLVE]

Signs in on the fixture site, asks the fixture LLM, places an order (a browser click
that is an effect), reads the account page, asks again, sends a notification through
``run.once`` (an HTTP effect the site counts) and runs a plain step. Prints ``RESULT``
and ``STATS`` lines (JSON); exits 3 with ``AMBIGUOUS <effect>`` when the run stops on
an ambiguous effect. ``RESOLVE`` is how the caller settles one: ``assume_done`` or
``retry`` (the run's on_ambiguous) or ``check`` (the notification is checked with the
site).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import urllib.parse
import urllib.request

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import litellm

import recorder
from fixtures.site import CATALOGUE, PASSWORD

EMAIL = "ada@example.com"


def notify(site: str, text: str, *, idempotency_key: str) -> dict[str, bool]:
    data = urllib.parse.urlencode({"key": idempotency_key, "text": text}).encode()
    with urllib.request.urlopen(site + "/api/notify", data=data, timeout=30) as response:
        return {"sent": bool(json.loads(response.read())["ok"])}


def notified(site: str) -> recorder.effects.Check:
    """The user's own check: did the site get a notification with this key? If it did,
    the effect's result is what ``notify`` would have returned."""

    def check(key: str) -> dict[str, bool] | bool:
        query = urllib.parse.urlencode({"key": key})
        with urllib.request.urlopen(f"{site}/api/notify?{query}", timeout=30) as response:
            return {"sent": True} if int(json.loads(response.read())["count"]) > 0 else False

    return check


def main(site: str, llm: str, store: str, resolve: str = "") -> int:
    litellm.suppress_debug_info = True
    ask = {"model": "openai/gpt-4o-mini", "api_base": llm, "api_key": "sk-x", "num_retries": 0}
    policy = resolve if resolve in ("assume_done", "retry") else "raise"
    check = notified(site) if resolve == "check" else None
    try:
        with recorder.run("crash-points", store=store, on_ambiguous=policy) as run:
            page = run.new_page()
            page.goto(site + "/login")
            page.fill("#email", EMAIL)
            page.fill("#password", PASSWORD)
            page.click("#sign-in")
            plan = litellm.completion(
                messages=[{"role": "user", "content": "Pick a flight to Rome"}], **ask
            )
            page.goto(f"{site}/order/{CATALOGUE[0].id}")
            page.fill("#name", "Ada Lovelace")
            page.check("#terms")
            page.locator("#place-order").click(effect="place-order")
            page.goto(site + "/account")
            orders = page.locator("#my-orders li").all_inner_texts()
            summary = litellm.completion(
                messages=[{"role": "user", "content": "Summarise: " + "; ".join(orders)}], **ask
            )
            text = str(summary.choices[0].message.content)
            sent = run.once("notify", notify, site, text, check=check)
            stamp = run.step("shout", str.upper, text)
    except recorder.AmbiguousEffectError as error:
        print(f"AMBIGUOUS {error.effect}", flush=True)
        return 3
    result = {"plan": plan.choices[0].message.content, "orders": orders, "summary": text,
              "sent": sent, "stamp": stamp}  # fmt: skip
    print("RESULT " + json.dumps(result, sort_keys=True), flush=True)
    print("STATS " + json.dumps(dataclasses.asdict(run.stats)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
