"""The attacker of tests/hardening/test_attacks.py, in a process of its own (so that its work does not
delay the bystander's pings in the test process): ``python -m tests.hardening.attacker PLAN`` where
PLAN is JSON. It prints "ready" once started, attacks when it reads a line, then prints what it got
as JSON (so that its start-up is not part of the attack the bystander sees).

PLAN: {"url": ..., "token": ... or null, "phases": [PHASE, ...]}, each PHASE one of
  {"body": {...}, "loops": n, "seconds": s}           n loops sending body back to back for s seconds
                                                       ("unique": true: a comment numbers each query, so
                                                       that no cache of parsed or validated documents helps)
  {"body": {...}, "after_429": s}                      one loop until s seconds after the first 429
Output: a list per phase of {"status", "codes", "extensions", "retry_after", "data_keys"} per response.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx


def _summary(r: httpx.Response) -> dict:
    body = r.json()
    data = body.get("data")
    nodes = (data or {}).get("nodes") if isinstance(data, dict) else None
    return {"status": r.status_code, "codes": [e.get("extensions", {}).get("code") for e in body.get("errors", [])],
            "extensions": [e.get("extensions", {}) for e in body.get("errors", [])],
            "retry_after": r.headers.get("retry-after"), "has_data": "data" in body,
            "node_fields": len(nodes[0]) if nodes and nodes[0] else None}


async def _loops(clients: list[httpx.AsyncClient], headers: dict, phase: dict) -> list[dict]:
    out: list[dict] = []
    end = time.perf_counter() + phase["seconds"]

    async def loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < end:
            body = phase["body"]
            if phase.get("unique"):
                body = {**body, "query": f"{body['query']}\n# {len(out)} {id(client)}"}
            out.append(_summary(await client.post("/graphql", json=body, headers=headers)))

    await asyncio.gather(*(loop(client) for client in clients))
    return out


async def _until_429(clients: list[httpx.AsyncClient], headers: dict, phase: dict) -> list[dict]:
    out: list[dict] = []
    end: float | None = None
    while end is None or time.perf_counter() < end:
        r = await clients[0].post("/graphql", json=phase["body"], headers=headers)
        out.append(_summary(r))
        if r.status_code == 429 and end is None:
            end = time.perf_counter() + phase["after_429"]
    return out


async def main(plan: dict) -> list[list[dict]]:
    headers = {"Authorization": f"Bearer {plan['token']}"} if plan.get("token") else {}
    # Clients made before the attack (each loads the CA bundle: a burst of CPU that is no attack).
    clients = [[httpx.AsyncClient(base_url=plan["url"], timeout=60) for _ in range(phase.get("loops", 1))]
               for phase in plan["phases"]]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    results = []
    for phase, phase_clients in zip(plan["phases"], clients, strict=True):
        run = _until_429 if "after_429" in phase else _loops
        results.append(await run(phase_clients, headers, phase))
    for phase_clients in clients:
        for client in phase_clients:
            await client.aclose()
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))), flush=True)
