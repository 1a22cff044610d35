"""Turns the wrk outputs of bench.sh into the "Foundation load run" section of docs/benchmarks.md."""
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone

runs_file, startup_ms, rss_reads_kib, rss_kib, seconds, doc = sys.argv[1:7]
BEGIN, END = "<!-- bench:foundation:begin -->", "<!-- bench:foundation:end -->"


def ms(value: str) -> str:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    factor = {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
    return f"{float(number) * factor:.1f}"


rows = []
for line in open(runs_file):
    name, concurrency, path = line.rstrip("\n").split("\t")
    text = open(path).read()
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    rows.append(f"| `{name}` | {concurrency} | {rps:,.0f} | {ms(latency['50'])} | {ms(latency['99'])} | {errors} / {total} |")

cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
section = "\n".join([
    BEGIN,
    f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `make bench` on {platform.machine()} ({cpu}, "
    f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores): release dev server, demo data, "
    f"moto 5.2.5 as DynamoDB, wrk 2 threads, {seconds} s per run, 127.0.0.1.",
    "",
    "| endpoint | concurrency | requests/s | p50 ms | p99 ms | errors / requests |",
    "|---|---|---|---|---|---|",
    *rows,
    "",
    f"- Process start → first 200 on `/maintenances/next/`: **{startup_ms} ms** (state, AWS clients, routers; no seeding).",
    f"- Server peak RSS: **{int(rss_reads_kib) / 1024:.1f} MiB** after the read runs, **{int(rss_kib) / 1024:.1f} MiB** "
    "after the login runs (argon2id works in 19 MiB per hashing, on one thread per core; the rest of the growth is "
    "allocator retention, not investigated further).",
    END,
])
content = open(doc).read() if __import__("os").path.exists(doc) else ""
if BEGIN in content:
    content = content[: content.index(BEGIN)] + section + content[content.index(END) + len(END):]
else:
    content = content.rstrip() + "\n\n" + section + "\n"
open(doc, "w").write(content)
