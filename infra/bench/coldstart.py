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

With --load N, each HTTP function then serves N invocations of its own endpoints in one container (LOAD_CASES), one
at a time as Lambda sends them, and its peak RSS (VmHWM) and RSS at the end are read: what a warm container holds
after a working day's mix, against the template's MemorySize. Needs BENCH_TOKEN, BENCH_ADMIN (username and password
of that admin, "user:password"), BENCH_OWNER and BENCH_OWNER10 (the heavy owners' usernames, password
BENCH_OWNER_PASSWORD), and BENCH_OWNER_TOKEN / BENCH_OWNER10_TOKEN.
"""
import argparse
import json
import os
import statistics
import subprocess
import threading
import time
import urllib.parse
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
    ("export-worker", "batch-with-poison.json", "SQS batch: a launch of an unknown export (one GetItem), a poison message"),
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


# (function, [(method, path, query, body, who)]): each function's own endpoints for --load, cycled through; `who` is
# "admin", "owner" (the heavy owner) or "owner10" (the 10x owner); a body is form-encoded.
LOAD_CASES = [
    ("auth-api", [("POST", "/auth/login/", {}, "admin-credentials", None)]),
    ("users-api", [("GET", "/users/", {"page": "1"}, None, "admin"),
                   ("GET", "/users/", {"page": "1", "search": "load"}, None, "admin")]),
    ("accesses-api", [("GET", "/accesses/perimeters/", {"limit": "20"}, None, "admin"),
                      ("GET", "/accesses/perimeters/patient-data/rights/", {"limit": "20"}, None, "admin"),
                      ("GET", "/accesses/accesses/my-accesses/", {}, None, "admin"),
                      ("GET", "/accesses/accesses/", {"limit": "20"}, None, "admin")]),
    ("cohort-api", [("GET", "/cohort/requests/", {"limit": "20"}, None, "owner"),
                    ("GET", "/cohort/cohorts/", {"limit": "20"}, None, "owner"),
                    ("GET", "/cohort/folders/", {}, None, "owner"),
                    ("GET", "/cohort/cohorts/cohort-rights/", {}, None, "owner"),
                    ("GET", "/cohort/requests/", {"limit": "20", "ordering": "name"}, None, "owner10"),
                    ("GET", "/cohort/cohorts/", {"limit": "20"}, None, "owner10")]),
    ("exports-api", [("GET", "/exports/", {"limit": "20"}, None, "admin"),
                     ("GET", "/exports/", {"limit": "20"}, None, "owner"),
                     ("GET", "/exports/", {"limit": "20", "output_format": "xlsx"}, None, "admin")]),
    ("platform-api", [("GET", "/maintenances/", {}, None, "admin"),
                      ("GET", "/logs/", {"page": "1", "ordering": "-requested_at"}, None, "admin")]),
]


def api_event(event: bytes, path: str, query: dict, token, method="GET", body=None) -> bytes:
    """The sample API Gateway event, made a `method` request to `path`, with a bearer token if given and a
    form-encoded body if given."""
    e = json.loads(event)
    e["httpMethod"] = method
    first, *rest = path.strip("/").split("/", 1)
    e["resource"] = f"/{first}/{{proxy+}}" if rest else f"/{first}"
    e["path"] = path
    e["pathParameters"] = {"proxy": rest[0]} if rest else None
    e["requestContext"]["path"] = "/prod" + path
    e["requestContext"]["httpMethod"] = method
    e["queryStringParameters"] = query or None
    e["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    auth = f"Bearer {token}" if token else "Bearer null"
    e["headers"]["Authorization"] = auth
    e["multiValueHeaders"]["Authorization"] = [auth]
    if body is not None:
        e["body"] = urllib.parse.urlencode(body)
        e["isBase64Encoded"] = False
        e["headers"]["Content-Type"] = "application/x-www-form-urlencoded"
        e["multiValueHeaders"]["Content-Type"] = ["application/x-www-form-urlencoded"]
    return json.dumps(e).encode()


def authenticated(event: bytes, path: str, query: dict, token: str) -> bytes:
    """The sample API Gateway event, made a request to `path` with a bearer token."""
    return api_event(event, path, query, token)


class Stub:
    """One run's Runtime API: its events one after the other, then `next` blocks until the process is killed."""

    def __init__(self, events):
        self.events = list(events)
        self.handed = 0
        self.next_at = None
        self.asked_at = None
        self.done_at = None
        self.outcome = None
        self.durations = []
        self.outcomes = []
        self.done = threading.Event()


def handler_for(stub: Stub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if not self.path.endswith("/runtime/invocation/next"):
                return self.reply(404, b"{}")
            if stub.handed == len(stub.events):
                stub.done.wait(30)  # every event answered: the run is over
                return self.reply(500, b"{}")
            event = stub.events[stub.handed]
            stub.handed += 1
            stub.asked_at = time.perf_counter()
            if stub.next_at is None:
                stub.next_at = stub.asked_at
            deadline = int(time.time() * 1000) + 30_000
            self.send_response(200)
            for name, value in [
                ("Lambda-Runtime-Aws-Request-Id", f"coldstart-{stub.handed}"),
                ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench"),
                ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(event))),
            ]:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(event)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if "/invocation/" in self.path or self.path.endswith("/init/error"):
                now = time.perf_counter()
                kind = "response" if self.path.endswith("/response") else "error"
                if stub.done_at is None:
                    stub.done_at, stub.outcome = now, (kind, body)
                stub.durations.append((now - stub.asked_at) * 1000 if stub.asked_at else 0.0)
                stub.outcomes.append(answer_of((kind, body)))
                if self.path.endswith("/init/error") or len(stub.outcomes) == len(stub.events):
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


def rss_mib(pid: int, field: str = "VmHWM") -> float:
    """VmHWM (peak resident set) or VmRSS (now) of a process, MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mib(pid: int) -> float:
    return rss_mib(pid)


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
    stub, rss = run_events(binary, [event], 30)
    if stub.next_at is None or stub.done_at is None:
        raise SystemExit(f"{binary}: no invocation completed")
    return (stub.next_at - stub.spawned) * 1000, (stub.done_at - stub.next_at) * 1000, rss[0], answer_of(stub.outcome)


def run_events(binary: str, events, timeout: float):
    """Starts the binary, serves it `events` one at a time, and answers the stub and (peak RSS, RSS) at the end."""
    stub = Stub(events)
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
    stub.spawned = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        stub.done.wait(timeout)
        alive = process.poll() is None
        rss = (rss_mib(process.pid), rss_mib(process.pid, "VmRSS")) if alive else (0.0, 0.0)
    finally:
        process.kill()
        process.wait()
        server.shutdown()
    return stub, rss


def load_events(sample: bytes, steps, count: int, env) -> list:
    """`count` events cycling through a function's endpoints, as the users `who` names."""
    tokens = {"admin": env["BENCH_TOKEN"], "owner": env["BENCH_OWNER_TOKEN"], "owner10": env["BENCH_OWNER10_TOKEN"]}
    user, password = env["BENCH_ADMIN"].split(":", 1)
    events = []
    for method, path, query, body, who in steps:
        form = {"username": user, "password": password} if body == "admin-credentials" else body
        events.append(api_event(sample, path, query, tokens.get(who), method, form))
    return [events[i % len(events)] for i in range(count)]


def load_run(args):
    """Each HTTP function serves --load invocations of its endpoints in one container; prints a Markdown table."""
    print("| function | invocations: what | invocation ms (p50 / p99) | peak RSS MiB | RSS at the end MiB | answers |")
    print("|---|---|---|---|---|---|")
    for function, steps in LOAD_CASES:
        if args.only and function not in args.only:
            continue
        sample_file = sorted(os.listdir(os.path.join(args.events, function)))[0]
        with open(os.path.join(args.events, function, sample_file), "rb") as f:
            sample = f.read()
        events = load_events(sample, steps, args.load, os.environ)
        stub, (peak, end) = run_events(os.path.join(args.bin_dir, function), events, 600)
        if len(stub.durations) != len(events):
            raise SystemExit(f"{function}: {len(stub.durations)} of {len(events)} invocations answered")
        durations = sorted(stub.durations)
        p99 = durations[min(len(durations) - 1, int(len(durations) * 0.99))]
        what = ", ".join(f"{m} {p}{'?' + urllib.parse.urlencode(q) if q else ''} ({w or 'anonymous'})"
                         for m, p, q, _, w in steps)
        answers = ", ".join(f"{a} × {stub.outcomes.count(a)}" for a in sorted(set(stub.outcomes)))
        print(f"| `{function}` | {len(events)}: {what} | {statistics.median(durations):.1f} / {p99:.1f} | "
              f"{peak:.0f} | {end:.0f} | {answers} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--events", default="events")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="these functions only")
    parser.add_argument("--load", type=int, default=0, help="then this many invocations per HTTP function")
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


    if args.load:
        print()
        load_run(args)


if __name__ == "__main__":
    main()
