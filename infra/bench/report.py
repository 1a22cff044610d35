"""Turns the wrk outputs of a bench script into a section of docs/benchmarks.md.

usage: report.py RUNS_TSV SECTION DOC [NOTE ...]
RUNS_TSV lines: label<TAB>concurrency<TAB>wrk output file, optionally followed by <TAB>the DynamoDB calls served
per operation before the run<TAB>after it (JSON objects, see infra/scripts/bench-dynamodb.sh): then a column gives
the calls per request, and when those objects hold `items_read` (the items read per operation, counted by
infra/dynalite/serve.js) one gives the items read per request ("—" for a run without them); then optionally <TAB>"SERVER EMULATOR": the CPU clock ticks each spent during the run ("-" if
unknown), as CPU ms per request. BENCH_DYNAMODB_LABEL names what played DynamoDB. The section sits between
<!-- bench:SECTION:begin --> and <!-- bench:SECTION:end --> markers (added at the end if missing).
"""
import json
import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone

from docs_section import write_section

runs_file, section_name, doc, *notes = sys.argv[1:]

def ms(value: str) -> str:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    factor = {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
    return f"{float(number) * factor:.1f}"


def calls_per_request(before: dict, after: dict, requests: int) -> str:
    spent = {op: n - before.get(op, 0) for op, n in after.items() if n > before.get(op, 0)}
    if not spent or not requests:
        return "-"
    total = sum(spent.values()) / requests
    return f"{total:.2f}: " + ", ".join(f"{op} {n / requests:.2f}" for op, n in sorted(spent.items(), key=lambda x: -x[1]))


def items_per_request(before: dict, after: dict, requests: int) -> str:
    """The items read per request, all operations together; "—" when the counts are missing."""
    if not isinstance(after, dict) or not requests:
        return "—"
    read = sum(n - (before or {}).get(op, 0) for op, n in after.items())
    return f"{read / requests:,.1f}"


def cpu_per_request(ticks: str, requests: int) -> str:
    ms = [f"{int(t) * 1000 / os.sysconf('SC_CLK_TCK') / requests:.1f}" if t != "-" and requests else "-" for t in ticks.split()]
    return " / ".join(ms)


rows = []
counted = timed = items = stalled = False
for line in open(runs_file):
    name, concurrency, path, *extra = line.rstrip("\n").split("\t")
    calls, cpu = extra[:2], extra[2:]
    text = open(path).read()
    latency = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", text, re.M))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    calls_cell = read_cell = cpu_cell = stall_cell = None
    if calls and calls[0] != "{}":
        counted = True
        before, after = map(json.loads, calls)
        stalls_before, stalls_after = before.pop("stalls", None), after.pop("stalls", None)
        if stalls_after:
            stalled = True
            count = stalls_after["count"] - (stalls_before or {}).get("count", 0)
            stall_cell = f"{count} ({stalls_after['longest_ms']} ms)"
        read_cell = items_per_request(before.pop("items_read", None), after.pop("items_read", None), total)
        items = items or read_cell != "—"
        calls_cell = calls_per_request(before, after, total)
    if cpu:
        timed = True
        cpu_cell = cpu_per_request(cpu[0], total)
    cells = [f"`{name}`", concurrency, f"{rps:,.0f}", ms(latency["50"]), ms(latency["90"]), ms(latency["99"]),
             f"{errors} / {total}"]
    rows.append((cells, calls_cell, read_cell, cpu_cell, stall_cell))


def table_row(cells: list, calls_cell, read_cell, cpu_cell, stall_cell) -> str:
    cells = cells + ([calls_cell or "-"] if counted else []) + ([read_cell or "—"] if items else [])
    cells += [cpu_cell or "-"] if timed else []
    cells += [stall_cell or "-"] if stalled else []
    return "| " + " | ".join(cells) + " |"


cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
section = "\n".join([
    f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()} ({cpu}, {cores} cores): release dev "
    f"server, {os.environ.get('BENCH_DYNAMODB_LABEL', 'moto')} as DynamoDB, wrk 2 threads, 127.0.0.1.",
    "",
    "| request | concurrency | requests/s | p50 ms | p90 ms | p99 ms | non-2xx or errors / requests |"
    + (" DynamoDB calls per request |" if counted else "")
    + (" DynamoDB items read / request |" if items else "")
    + (" CPU ms per request: server / DynamoDB |" if timed else "")
    + (" emulator stalls ≥ 100 ms (longest) |" if stalled else ""),
    "|---|---|---|---|---|---|---|" + ("---|" if counted else "") + ("---|" if items else "") + ("---|" if timed else "")
    + ("---|" if stalled else ""),
    *[table_row(*row) for row in rows],
    "",
    *[f"- {note}" for note in notes],
])
write_section(doc, section_name, section)
