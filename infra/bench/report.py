"""Turns the wrk outputs of a bench script into a section of docs/benchmarks.md.

usage: report.py RUNS_TSV SECTION DOC [NOTE ...]
RUNS_TSV lines: label<TAB>concurrency<TAB>wrk output file, optionally followed by <TAB>the DynamoDB calls served
per operation before the run<TAB>after it (JSON objects, see infra/scripts/bench-dynamodb.sh): then a column gives
the calls per request; then optionally <TAB>"SERVER EMULATOR": the CPU clock ticks each spent during the run ("-" if
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


def calls_per_request(before: str, after: str, requests: int) -> str:
    before, after = json.loads(before), json.loads(after)
    spent = {op: n - before.get(op, 0) for op, n in after.items() if n > before.get(op, 0)}
    if not spent or not requests:
        return "-"
    total = sum(spent.values()) / requests
    return f"{total:.2f}: " + ", ".join(f"{op} {n / requests:.2f}" for op, n in sorted(spent.items(), key=lambda x: -x[1]))


def cpu_per_request(ticks: str, requests: int) -> str:
    ms = [f"{int(t) * 1000 / os.sysconf('SC_CLK_TCK') / requests:.1f}" if t != "-" and requests else "-" for t in ticks.split()]
    return " / ".join(ms)


rows = []
counted = timed = False
for line in open(runs_file):
    name, concurrency, path, *extra = line.rstrip("\n").split("\t")
    calls, cpu = extra[:2], extra[2:]
    text = open(path).read()
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    row = f"| `{name}` | {concurrency} | {rps:,.0f} | {ms(latency['50'])} | {ms(latency['99'])} | {errors} / {total} |"
    if calls and calls[0] != "{}":
        counted = True
        row += f" {calls_per_request(*calls, total)} |"
    if cpu:
        timed = True
        row += f" {cpu_per_request(cpu[0], total)} |"
    rows.append(row)

cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
section = "\n".join([
    f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()} ({cpu}, {cores} cores): release dev "
    f"server, {os.environ.get('BENCH_DYNAMODB_LABEL', 'moto')} as DynamoDB, wrk 2 threads, 127.0.0.1.",
    "",
    "| request | concurrency | requests/s | p50 ms | p99 ms | non-2xx or errors / requests |"
    + (" DynamoDB calls per request |" if counted else "")
    + (" CPU ms per request: server / DynamoDB |" if timed else ""),
    "|---|---|---|---|---|---|" + ("---|" if counted else "") + ("---|" if timed else ""),
    *rows,
    "",
    *[f"- {note}" for note in notes],
])
write_section(doc, section_name, section)
