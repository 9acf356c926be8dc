#!/usr/bin/env python3
"""A fault-injecting and recording HTTP proxy in front of moto, for the fault tests and the IAM check.

It forwards every request to the upstream endpoint unchanged, except that a seeded random share of
the calls to the throttled services is answered, without reaching moto, with the error AWS itself
sends when it throttles:

  dynamodb  400 ProvisionedThroughputExceededException or ThrottlingException (JSON 1.0)
  sqs       400 ThrottlingException (JSON protocol, with the query-compatible error header)
  s3        503 SlowDown (XML)

Which calls: with --rate above 0, the second call to each throttled service (so every one is
throttled at least once) and a seeded random share of the others; and optionally a burst of consecutive calls
(--burst SERVICE:AFTER:COUNT), long enough to outlast the SDK's and the consumer's own retries so
the invocation fails and the event source mapping has to retry the batch.

The service is read from the SigV4 credential scope of the Authorization header, so one proxy
serves every client of a process that points AWS_ENDPOINT_URL at it. Counts of forwarded and
throttled calls per service are written to --stats as JSON (rewritten after every request).
With --rate 0 it is a plain pass-through, which the outage test stops and restarts to make the
AWS endpoint refuse connections. Binds 127.0.0.1 only.

With --record FILE it also appends one JSON line per request, for the IAM check (scripts/test.sh stage
`iam`): the calling process (found from the client's socket), the SigV4 service, region and access key,
the operation (X-Amz-Target, the query protocol's Action, or S3's method and path) and the resources the
request names; STS AssumeRole answers add the assumed role's access key, so later calls signed with it
are known to run as that role. With --record-bodies each line also carries the time it was
answered, the request's size and, for DynamoDB, both JSON bodies: the benchmark (figure 6,
`pipeline-bench share`) computes the read and write request units of each call from them.

With --listen LABEL=PORT (repeatable) it also accepts on PORT and records each request arriving there
with "acting_as": LABEL. That is how a caller states explicitly whom it stands for when one process
holds several identities (an integration test calls AWS as the consumer, as the event source mapping
of the consumer, and as itself for set-up and assertions): each identity gets its own endpoint.

  throttle_proxy.py --port 49015 --upstream http://127.0.0.1:45000 --rate 0.2 --seed 7 --stats f.json \
      --burst dynamodb:10:20
  throttle_proxy.py --port 49016 --upstream http://127.0.0.1:45000 --rate 0 --stats f.json --record calls.jsonl
  throttle_proxy.py --port 49016 --upstream http://127.0.0.1:45000 --rate 0 --stats f.json --record calls.jsonl \
      --listen consumer=49017 --listen esm:consumer=49018 --listen test=49019
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length", "expect"}


def throttle_response(service: str, choice: int) -> tuple[int, dict[str, str], bytes]:
    request_id = str(uuid.uuid4())
    if service == "dynamodb":
        code = "ProvisionedThroughputExceededException" if choice % 2 == 0 else "ThrottlingException"
        namespace = "com.amazonaws.dynamodb.v20120810" if choice % 2 == 0 else "com.amazon.coral.availability"
        body = {"__type": f"{namespace}#{code}", "message": "Rate of requests exceeds the allowed throughput."}
        return 400, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id}, json.dumps(body).encode()
    if service == "sqs":
        body = {"__type": "com.amazonaws.sqs#ThrottlingException", "message": "Rate exceeded"}
        return 400, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id,
                     "x-amzn-query-error": "ThrottlingException;Sender"}, json.dumps(body).encode()
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            f"<Message>Please reduce your request rate.</Message><RequestId>{request_id}</RequestId></Error>")
    return 503, {"Content-Type": "application/xml", "x-amz-request-id": request_id}, body.encode()


# JSON request fields that name the resource an operation acts on (DynamoDB, SQS, Secrets Manager, Glue, KMS).
RESOURCE_FIELDS = ("TableName", "QueueUrl", "QueueName", "SecretId", "SchemaVersionId", "SchemaId", "RegistryId",
                   "RegistryName", "SchemaName", "KeyId", "LogGroupName")


def s3_operation(method: str, path: str, query: dict[str, list[str]]) -> tuple[str, dict]:
    """The S3 REST operation and its bucket and key, for a path-style request."""
    parts = path.lstrip("/").split("/", 1)
    bucket = urllib.parse.unquote(parts[0]) if parts[0] else None
    key = urllib.parse.unquote(parts[1]) if len(parts) > 1 and parts[1] else None
    resource = {k: v for k, v in {"Bucket": bucket, "Key": key}.items() if v is not None}
    if key is None:
        if method == "GET":
            return ("ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"), resource
        return {"HEAD": "HeadBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(method, method), resource
    if "uploads" in query:
        return "CreateMultipartUpload", resource
    if "uploadId" in query:
        if method == "PUT":
            return "UploadPart", resource
        return {"POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload", "GET": "ListParts"}.get(method, method), resource
    if "tagging" in query:
        return f"{'Get' if method == 'GET' else 'Put'}ObjectTagging", resource
    return {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject", "DELETE": "DeleteObject"}.get(method, method), resource


def describe_request(method: str, path: str, headers, body: bytes) -> dict:
    """Service, region, access key, operation and named resources of one signed AWS request."""
    match = SCOPE.search(headers.get("Authorization", ""))
    access_key, region, service = match.groups() if match else (None, None, "unsigned")
    split = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
    operation, resource = None, {}
    target = headers.get("X-Amz-Target")
    if target:
        operation = target.rsplit(".", 1)[-1]
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        resource = {k: payload[k] for k in RESOURCE_FIELDS if k in payload}
        if isinstance(payload.get("RequestItems"), dict):
            resource["Tables"] = sorted(payload["RequestItems"])
        if isinstance(payload.get("TransactItems"), list):
            # Each item is authorised as its own action (Put -> dynamodb:PutItem, ...) on its table.
            resource["Items"] = sorted({(kind, body.get("TableName")) for item in payload["TransactItems"]
                                        for kind, body in item.items() if isinstance(body, dict)})
    elif service == "s3":
        operation, resource = s3_operation(method, split.path, query)
    else:
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if body else {}
        form.update(query)
        if "Action" in form:
            operation = form["Action"][0]
            resource = {k: v[0] for k, v in form.items() if k in ("RoleArn", "QueueUrl", "RoleSessionName")}
    return {"service": service, "region": region, "access_key": access_key, "operation": operation or method,
            "resource": resource}


def assumed_role_keys(data: bytes) -> str | None:
    """The AccessKeyId of an STS AssumeRole answer (XML, or JSON with the awsJson protocol)."""
    text = data.decode("utf-8", "replace")
    match = re.search(r"<AccessKeyId>([^<]+)</AccessKeyId>", text) or re.search(r'"AccessKeyId"\s*:\s*"([^"]+)"', text)
    return match.group(1) if match else None


def client_process(port: int) -> dict:
    """The process that owns the client end of a loopback connection (ss -p; the proxy runs as that user or root)."""
    try:
        out = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"], capture_output=True,
                             text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
    return {"process": match.group(1), "pid": int(match.group(2))} if match else {}


class Recorder:
    """Appends one JSON line per request; one lock keeps lines whole."""

    def __init__(self, path: str):
        self.out = open(path, "a", buffering=1)  # noqa: SIM115 - open for the server's lifetime
        self.lock = threading.Lock()

    def write(self, entry: dict) -> None:
        with self.lock:
            self.out.write(json.dumps(entry, sort_keys=True) + "\n")


class Proxy:
    def __init__(self, upstream: str, rate: float, services: set[str], seed: int, stats_path: str,
                 bursts: dict[str, tuple[int, int]], recorder: Recorder | None = None, bodies: bool = False):
        parsed = urllib.parse.urlsplit(upstream)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.rate, self.services, self.stats_path, self.bursts = rate, services, stats_path, bursts
        # One generator per service, so one service's share does not depend on the others' traffic.
        self.randoms = {service: random.Random(f"{seed}-{service}") for service in services}
        self.calls: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        self.stats_write_lock = threading.Lock()
        self.stats: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.local = threading.local()
        self.recorder = recorder
        self.bodies = bodies

    def decide(self, service: str) -> int | None:
        """A throttle variant when this call is to be throttled, else None."""
        with self.lock:
            self.calls[service] += 1
            if service in self.services:
                n, rng = self.calls[service], self.randoms[service]
                after, count = self.bursts.get(service, (0, 0))
                if (n == 2 and self.rate > 0) or after < n <= after + count or rng.random() < self.rate:
                    self.stats[service]["throttled"] += 1
                    return n
            self.stats[service]["forwarded"] += 1
            return None

    def write_stats(self) -> None:
        # One writer at a time: concurrent requests sharing the temporary file raced, and the loser's
        # os.replace failed after its response was sent, dropping the client's connection.
        with self.stats_write_lock:
            with self.lock:
                data = {service: dict(counts) for service, counts in self.stats.items()}
            tmp = f"{self.stats_path}.tmp"
            with open(tmp, "w") as out:
                json.dump(data, out)
            os.replace(tmp, self.stats_path)

    def connection(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            self.local.conn = conn
        return conn

    def forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes):
        for attempt in range(2):
            conn = self.connection()
            try:
                conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                if body or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                response = conn.getresponse()
                data = response.read()
                return response.status, response.getheaders(), data
            except (http.client.HTTPException, OSError):
                # A kept-alive upstream connection may have been closed: retry once on a new one.
                conn.close()
                self.local.conn = None
                if attempt == 1:
                    raise
        raise RuntimeError("unreachable")


def make_handler(proxy: Proxy, acting_as: str | None = None):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
            pass

        def read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def caller(self) -> dict:
            # One handler per connection: look the client process up once.
            if not hasattr(self, "_caller"):
                self._caller = client_process(self.client_address[1])
            return self._caller

        def record(self, body: bytes, status: int, data: bytes) -> None:
            if proxy.recorder is None:
                return
            entry = describe_request(self.command, self.path, self.headers, body)
            entry.update(caller=self.caller(), status=status)
            if acting_as is not None:
                entry["acting_as"] = acting_as
            if entry["service"] == "sts" and entry["operation"] == "AssumeRole" and status == 200:
                entry["assumed_access_key"] = assumed_role_keys(data)
            if proxy.bodies:
                entry.update(time=time.time(), request_bytes=len(body))
                if entry["service"] == "dynamodb":
                    entry.update(request_body=body.decode("utf-8", "replace"),
                                 response_body=data.decode("utf-8", "replace"))
            proxy.recorder.write(entry)

        def handle_any(self) -> None:
            if proxy.recorder is not None:
                self.caller()  # while the client still holds the connection
            body = self.read_body()
            match = SCOPE.search(self.headers.get("Authorization", ""))
            service = match.group(3) if match else "unsigned"
            variant = proxy.decide(service)
            if variant is not None:
                status, headers, data = throttle_response(service, variant)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                self.record(body, status, data)
            else:
                forwarded = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
                try:
                    status, headers, data = proxy.forward(self.command, self.path, forwarded, body)
                except (http.client.HTTPException, OSError) as error:
                    self.send_error(502, f"upstream: {error}")
                    return
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                if self.command == "HEAD":
                    length = next((v for k, v in headers if k.lower() == "content-length"), "0")
                    self.send_header("Content-Length", length)
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                self.record(body, status, data)
            proxy.write_stats()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = handle_any

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--services", default="dynamodb,s3,sqs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--burst", action="append", default=[], metavar="SERVICE:AFTER:COUNT",
                        help="throttle COUNT consecutive calls to SERVICE after its AFTER-th call")
    parser.add_argument("--record", help="append one JSON line per request (service, operation, resources, caller)")
    parser.add_argument("--listen", action="append", default=[], metavar="LABEL=PORT",
                        help="also accept on PORT; requests there are recorded as acting as LABEL")
    parser.add_argument("--record-bodies", action="store_true",
                        help="with --record: add the time, the request size and DynamoDB's request and response bodies")
    args = parser.parse_args()
    if not 0 <= args.rate < 1:
        sys.exit("--rate must be in [0, 1)")
    bursts = {}
    for burst in args.burst:
        service, after, count = burst.split(":")
        bursts[service] = (int(after), int(count))
    listeners = parse_listeners(args.listen)
    if listeners and not args.record:
        sys.exit("--listen labels recorded calls: it needs --record")
    recorder = Recorder(args.record) if args.record else None
    proxy = Proxy(args.upstream, args.rate, set(args.services.split(",")), args.seed, args.stats, bursts, recorder,
                  args.record_bodies)
    proxy.write_stats()
    servers = [ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(proxy))]
    servers += [ThreadingHTTPServer(("127.0.0.1", port), make_handler(proxy, label)) for label, port in listeners]
    for server in servers:
        server.daemon_threads = True
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"throttle proxy on 127.0.0.1:{args.port} -> {args.upstream}, rate {args.rate}", file=sys.stderr, flush=True)
    for label, port in listeners:
        print(f"  127.0.0.1:{port} records calls as acting as {label}", file=sys.stderr, flush=True)
    servers[0].serve_forever()


def parse_listeners(values: list[str]) -> list[tuple[str, int]]:
    """LABEL=PORT pairs; a label names an identity (consumer, esm:consumer, test), so each is used once."""
    listeners = []
    for value in values:
        label, sep, port = value.rpartition("=")
        if not sep or not label or not port.isdigit():
            sys.exit(f"--listen {value!r}: expected LABEL=PORT")
        if label in {known for known, _ in listeners}:
            sys.exit(f"--listen: label {label!r} given twice")
        listeners.append((label, int(port)))
    return listeners


if __name__ == "__main__":
    main()
