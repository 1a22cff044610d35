#!/usr/bin/env python3
"""The Cohort360 home page against a running `make dev`, as the app loads it (client-contract §8.1).

Logs in, then fires the home page's ten back-end calls at once, ROUNDS times, and prints each call's p50 and p99
and the burst's (the slowest call of each round). With --afternoon N, first does what an afternoon of use leaves in
the table: N audited writes (folders, requests, snapshots, counts) by the same user, so that the emulator's table
holds their rows and their audit rows before the timed rounds.

    infra/bench/devhome.py [--base http://127.0.0.1:8000] [--rounds 30] [--afternoon 0] [--user admin]

Only 127.0.0.1 is called. Standard library only.
"""

import argparse
import concurrent.futures
import json
import statistics
import sys
import time
import urllib.error
import urllib.request

HOME = [
    "/accesses/accesses/my-accesses/",
    "/accesses/perimeters/patient-data/rights/",
    "/cohort/folders/?ordering=-created_at&limit=100",
    "/cohort/folders/?ordering=-created_at",
    "/cohort/requests/?limit=100&ordering=-updated_at",
    "/cohort/requests/?limit=5&ordering=-updated_at",
    "/cohort/cohorts/?is_sample=false&limit=5&ordering=-created_at&favorite=true",
    "/cohort/cohorts/?is_sample=false&limit=5&ordering=-created_at",
    "/webcontent/contents/?ordering=-created_at&content_type=BANNER_WARNING,BANNER_ERROR,BANNER_INFO",
    "/webcontent/contents/?ordering=-created_at&content_type=RELEASE_NOTE",
]

QUERY = {
    "_type": "request",
    "sourcePopulation": {"caresiteCohortList": []},
    "request": {"_type": "andGroup", "_id": 0, "isInclusive": True, "criteria": []},
}


def call(base, method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("authorizationMethod", "JWT")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    elapsed = (time.perf_counter() - started) * 1000
    return status, (json.loads(payload) if payload else None), elapsed


def login(base, user, password):
    status, body, _ = call(base, "POST", "/auth/login/", body={"username": user, "password": password})
    if status != 200:
        sys.exit(f"login as {user}: HTTP {status}")
    return body["access_token"]


def afternoon(base, fresh_token, writes):
    """`writes` audited writes in the shape of a working session: a folder, then requests with versions and counts."""
    done, folder, request, snapshot = 0, None, None, None
    while done < writes:
        if done % 100 == 0:
            # Access tokens live a few minutes (ACCESS_TOKEN_LIFETIME_SECONDS): a fresh one now and then.
            token = fresh_token()
        # A folder every 50 writes; in it, a request every 5: two versions, each counted.
        step = done % 5
        if folder is None or done % 50 == 0:
            status, body, _ = call(base, "POST", "/cohort/folders/", token, {"name": f"afternoon {done}"})
            folder, request = body.get("uuid") if isinstance(body, dict) else None, None
        elif request is None or step == 0:
            status, body, _ = call(base, "POST", "/cohort/requests/", token, {"name": f"r{done}", "parent_folder": folder})
            request, snapshot = body.get("uuid") if isinstance(body, dict) else None, None
        elif snapshot is None or step in (1, 3):
            # The app names the request for a first version only (sending both is refused, as by the original).
            payload = {"serialized_query": json.dumps(QUERY)}
            payload.update({"previous_snapshot": snapshot} if snapshot else {"request": request})
            status, body, _ = call(base, "POST", "/cohort/request-query-snapshots/", token, payload)
            snapshot = body.get("uuid") if isinstance(body, dict) else None
        else:
            status, body, _ = call(base, "POST", "/cohort/dated-measures/", token, {"request_query_snapshot": snapshot})
        if status >= 300:
            sys.exit(f"afternoon write {done}: HTTP {status} {body}")
        done += 1
        if done % 250 == 0:
            print(f"afternoon: {done} / {writes} writes", flush=True)
    return done


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--afternoon", type=int, default=0)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="admin")
    args = parser.parse_args()
    if not args.base.startswith("http://127.0.0.1"):
        sys.exit("only 127.0.0.1 is benchmarked")
    token = login(args.base, args.user, args.password)
    if args.afternoon:
        started = time.perf_counter()
        afternoon(args.base, lambda: login(args.base, args.user, args.password), args.afternoon)
        token = login(args.base, args.user, args.password)
        print(f"afternoon: {args.afternoon} audited writes in {time.perf_counter() - started:.1f} s")
    timings = {path: [] for path in HOME}
    bursts = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(HOME)) as pool:
        for _ in range(args.rounds):
            results = list(pool.map(lambda path: (path, call(args.base, "GET", path, token)), HOME))
            for path, (status, _, elapsed) in results:
                if status not in (200, 204):
                    sys.exit(f"{path}: HTTP {status}")
                timings[path].append(elapsed)
            bursts.append(max(elapsed for _, (_, _, elapsed) in results))

    def p(values, q):
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    print(f"| call | p50 ms | p99 ms |  ({args.rounds} rounds of the {len(HOME)} calls at once)")
    print("|---|---|---|")
    for path, values in timings.items():
        print(f"| `GET {path}` | {statistics.median(values):.0f} | {p(values, 0.99):.0f} |")
    print(f"| whole burst (slowest call) | {statistics.median(bursts):.0f} | {p(bursts, 0.99):.0f} |")


if __name__ == "__main__":
    main()
