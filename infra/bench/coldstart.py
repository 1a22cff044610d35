"""Cold starts of the Lambda binaries, measured locally (infra/scripts/bench-coldstart.sh runs it).

Each function's release binary is started as Lambda starts it: with AWS_LAMBDA_RUNTIME_API pointing at a
stub of the Lambda Runtime API (2018-06-01) served here on 127.0.0.1. The stub hands out one sample event of
events/<function>/ and records when things happen:
  * init: process spawned -> its first `GET /runtime/invocation/next` (configuration, AWS clients, caches);
  * first invocation: that GET answered -> the response (or error) POSTed back, against the emulator.
The process is then killed (its peak RSS read first), and the run repeated. Timings are wall clock on this
machine, not in Firecracker: no VM boot, no code download. Prints a Markdown table.

With BENCH_TOKEN (an access token of a full admin of the table the functions use), the functions that need the
perimeter tree are also started with an authenticated request that loads it (AUTHENTICATED_CASES): their first
invocation and peak RSS are the cost of the tree in a new container.
"""
import argparse
import json
import os
import statistics
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (function, sample event, what the event does)
CASES = [
    ("auth-api", "login-wrong-method.json", "GET /auth/login/ (no DynamoDB call)"),
    ("users-api", "list-users-anonymous.json", "GET /users/ without a token (no DynamoDB call)"),
    ("accesses-api", "my-accesses-anonymous.json", "GET /accesses/accesses/my-accesses/ without a token (none)"),
    ("cohort-api", "list-folders-anonymous.json", "GET /cohort/folders/ without a token (none)"),
    ("platform-api", "maintenances-next.json", "GET /maintenances/next/ (one DynamoDB Query)"),
    ("ws-api", "connect.json", "$connect (accepted, no DynamoDB call)"),
    ("cohort-worker", "batch-with-poison.json", "SQS batch: a count (one DynamoDB GetItem), 2 unreadable messages"),
    ("export-worker", "batch-with-poison.json", "SQS batch: 2 messages (exports are not built yet)"),
    ("scheduled-tasks", "maintenance-broadcast.json", "maintenance_broadcast (one DynamoDB Query)"),
]


# (function, sample event to adapt, path, query, what the request does): the tree-using functions, as the full
# admin (BENCH_TOKEN).
AUTHENTICATED_CASES = [
    ("accesses-api", "my-accesses-anonymous.json", "/accesses/perimeters/", {"limit": "20"},
     "GET /accesses/perimeters/?limit=20 as the full admin (authentication, tree load, the page's records)"),
    ("accesses-api", "my-accesses-anonymous.json", "/accesses/perimeters/patient-data/rights/", {"limit": "20"},
     "GET /accesses/perimeters/patient-data/rights/?limit=20 as the full admin (authentication, tree load)"),
    ("cohort-api", "list-folders-anonymous.json", "/cohort/cohorts/cohort-rights/", {},
     "GET /cohort/cohorts/cohort-rights/ as the full admin (authentication, tree load and workspace, no cohort)"),
]


def authenticated(event: bytes, path: str, query: dict, token: str) -> bytes:
    """The sample API Gateway event, made a request to `path` with a bearer token."""
    e = json.loads(event)
    e["path"] = path
    e["pathParameters"] = {"proxy": path.strip("/").split("/", 1)[1]}
    e["requestContext"]["path"] = "/prod" + path
    e["queryStringParameters"] = query or None
    e["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    e["headers"]["Authorization"] = f"Bearer {token}"
    e["multiValueHeaders"]["Authorization"] = [f"Bearer {token}"]
    return json.dumps(e).encode()


class Stub:
    """One run's Runtime API: a single event, then `next` blocks until the process is killed."""

    def __init__(self, event: bytes):
        self.event = event
        self.next_at = None
        self.done_at = None
        self.outcome = None
        self.done = threading.Event()


def handler_for(stub: Stub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if not self.path.endswith("/runtime/invocation/next"):
                return self.reply(404, b"{}")
            if stub.next_at is not None:
                stub.done.wait(30)  # a second `next`: the run is over
                return self.reply(500, b"{}")
            stub.next_at = time.perf_counter()
            deadline = int(time.time() * 1000) + 30_000
            self.send_response(200)
            for name, value in [
                ("Lambda-Runtime-Aws-Request-Id", "coldstart-1"),
                ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench"),
                ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(stub.event))),
            ]:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(stub.event)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if "/invocation/" in self.path or self.path.endswith("/init/error"):
                stub.done_at = time.perf_counter()
                kind = "response" if self.path.endswith("/response") else "error"
                stub.outcome = (kind, body)
                stub.done.set()
            self.reply(202, b'{"status":"OK"}')

        def reply(self, status, body):
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the process was killed at the end of its run

    return Handler


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the process is killed at the end of each run: its connections break, as expected


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def answer_of(outcome) -> str:
    if outcome is None:
        return "no answer"
    kind, body = outcome
    if kind == "error":
        return "error: " + json.loads(body or b"{}").get("errorType", "?")
    payload = json.loads(body or b"null")
    if isinstance(payload, dict) and "statusCode" in payload:
        return f"HTTP {payload['statusCode']}"
    if isinstance(payload, dict) and "batchItemFailures" in payload:
        return f"{len(payload['batchItemFailures'])} batch item failure(s)"
    return "ok"


def run_once(binary: str, event: bytes):
    stub = Stub(event)
    server = Server(("127.0.0.1", 0), handler_for(stub))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ)
    env.update(
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
        AWS_LAMBDA_FUNCTION_NAME="coldstart-bench",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_LOG_STREAM_NAME="bench",
        AWS_LAMBDA_LOG_GROUP_NAME="bench",
        RUST_LOG="warn",
    )
    spawned = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        stub.done.wait(30)
        rss = peak_rss_mib(process.pid) if process.poll() is None else 0.0
    finally:
        process.kill()
        process.wait()
        server.shutdown()
    if stub.next_at is None or stub.done_at is None:
        raise SystemExit(f"{binary}: no invocation completed (exit code {process.returncode})")
    return (stub.next_at - spawned) * 1000, (stub.done_at - stub.next_at) * 1000, rss, answer_of(stub.outcome)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--events", default="events")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="these functions only")
    args = parser.parse_args()
    token = os.environ.get("BENCH_TOKEN")
    cases = [(f, e, None, None, w) for f, e, w in CASES]
    cases += [(f, e, p, q, w) for f, e, p, q, w in AUTHENTICATED_CASES if token]
    print("| function | binary MiB | init ms (p50 / max) | first invocation ms (p50 / max) | peak RSS MiB | event → answer |")
    print("|---|---|---|---|---|---|")
    for function, event_file, path, query, what in cases:
        if args.only and function not in args.only:
            continue
        binary = os.path.join(args.bin_dir, function)
        with open(os.path.join(args.events, function, event_file), "rb") as f:
            event = f.read()
        if path:
            event = authenticated(event, path, query, token)
        runs = [run_once(binary, event) for _ in range(args.runs)]
        inits, firsts = [r[0] for r in runs], [r[1] for r in runs]
        answers = sorted({r[3] for r in runs})
        size = os.path.getsize(binary) / (1024 * 1024)
        print(
            f"| `{function}` | {size:.1f} | {statistics.median(inits):.1f} / {max(inits):.1f} | "
            f"{statistics.median(firsts):.1f} / {max(firsts):.1f} | {max(r[2] for r in runs):.0f} | "
            f"{what} → {', '.join(answers)} |"
        )


if __name__ == "__main__":
    main()
