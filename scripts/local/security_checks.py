#!/usr/bin/env python3
"""Security checks over a running local stack (called by scripts/security-checks.sh).

  security_checks.py secrets  --env-file F --log-dir D [--log-file F ...] [--aws-endpoint URL]
      Collects every secret value in play (passwords and keys in the stack env file, every secret
      stored in Secrets Manager on the local endpoint) and searches every captured log for each of
      them, verbatim and in the forms a log could carry it in (base64 at any alignment, URL- and
      JSON-escaped). Prints file:line and the secret's name (never the value) for each hit.

  security_checks.py loopback --run-dir D [--pid N ...] [--expect-port P ...]
      Every listening TCP or bound UDP socket owned by a stack process (the pids under the run
      directory, the extra pids, and all their descendants) must be bound to a loopback address.

Both first prove on planted data that they detect what they look for, and fail if they do not.
Exit status: 0 clean, 1 a finding (or a failed self-test), 2 usage/environment error.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import tempfile
import urllib.parse

# Values shorter than this cannot be searched for without matching ordinary words; the stack's
# secrets must be at least this long (the check fails otherwise, naming the secret).
MIN_SECRET_LENGTH = 8
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL|_KEY$", re.IGNORECASE)
# Names that look secret but hold none (ids, ARNs, locations).
NOT_SECRET = re.compile(r"ACCESS_KEY_ID$|_ARN$|_URL$|_NAME$", re.IGNORECASE)


def log(message: str) -> None:
    print(f"[security] {message}", file=sys.stderr)


# ── secrets ────────────────────────────────────────────────────────────────────────────────────


def env_file_secrets(path: pathlib.Path) -> dict[str, str]:
    """Secret-looking assignments of a shell env file (`export NAME=value`, value shell-quoted)."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, raw = line.partition("=")
        if not sep:
            continue
        try:
            words = shlex.split(raw)
        except ValueError:
            words = [raw]
        value = words[0] if words else ""
        if value and SECRET_NAME.search(name) and not NOT_SECRET.search(name):
            found[f"{path.name}:{name}"] = value
    return found


def secrets_manager_secrets(endpoint: str, region: str) -> dict[str, str]:
    """Every secret value stored in Secrets Manager at `endpoint` (string secrets; for JSON secrets
    also each secret-looking field)."""
    import boto3  # the project venv has it

    client = boto3.client(
        "secretsmanager",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local-secret"),
    )
    found: dict[str, str] = {}
    for page in client.get_paginator("list_secrets").paginate():
        for entry in page.get("SecretList", []):
            name = entry["Name"]
            try:
                value = client.get_secret_value(SecretId=entry["ARN"])
            except client.exceptions.ClientError as error:  # scheduled for deletion, no value yet
                log(f"secret {name}: no value to check ({error.response['Error']['Code']})")
                continue
            text = value.get("SecretString")
            if text is None:
                binary = value.get("SecretBinary")
                if binary:
                    found[f"secretsmanager:{name}"] = base64.b64encode(binary).decode()
                continue
            try:
                document = json.loads(text)
            except ValueError:
                document = None
            if isinstance(document, dict):
                for key, field in document.items():
                    if isinstance(field, str) and SECRET_NAME.search(key) and field:
                        found[f"secretsmanager:{name}.{key}"] = field
            elif text:
                found[f"secretsmanager:{name}"] = text
    return found


def forms(secret: str) -> list[tuple[str, bytes]]:
    """The byte strings a log line would contain if it carried `secret`."""
    raw = secret.encode()
    out = [("verbatim", raw)]
    quoted = urllib.parse.quote(secret, safe="")
    if quoted != secret:
        out.append(("url-encoded", quoted.encode()))
    escaped = json.dumps(secret)[1:-1]
    if escaped != secret:
        out.append(("json-escaped", escaped.encode()))
    # Base64 of any text that contains the secret contains, at one of three alignments, the
    # encoding of the secret's middle: drop the characters that depend on the neighbours.
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        # Character c carries input bits [6c, 6c + 6); keep those inside the secret's bits.
        start = -(-8 * shift // 6)
        end = 8 * (shift + len(raw)) // 6
        core = encoded[start:end]
        if len(core) >= MIN_SECRET_LENGTH:
            out.append((f"base64/{shift}", core.encode()))
            url_safe = core.replace("+", "-").replace("/", "_")
            if url_safe != core:
                out.append((f"base64url/{shift}", url_safe.encode()))
    return out


def scan(files: list[pathlib.Path], secrets: dict[str, str]) -> list[str]:
    needles = [(name, form, pattern) for name, value in secrets.items() for form, pattern in forms(value)]
    hits = []
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as error:
            hits.append(f"{path}: unreadable ({error})")
            continue
        for name, form, pattern in needles:
            start = 0
            while (at := data.find(pattern, start)) >= 0:
                line = data.count(b"\n", 0, at) + 1
                hits.append(f"{path}:{line}: {name} ({form})")
                start = at + len(pattern)
    return hits


def log_files(dirs: list[pathlib.Path], extra: list[pathlib.Path]) -> list[pathlib.Path]:
    files = [p for d in dirs if d.is_dir() for p in sorted(d.rglob("*")) if p.is_file()]
    files += [p for p in extra if p.is_file()]
    return files


def self_test_secrets(secrets: dict[str, str]) -> list[str]:
    """Plants every secret, in every form, inside other text in a temporary log and requires the
    scanner to find each one; an empty result would mean the scan could never fail."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        planted = pathlib.Path(tmp, "planted.log")
        for name, value in secrets.items():
            for form, _ in forms(value):
                text = {
                    "verbatim": f"INFO connecting with {value} now\n",
                    "url-encoded": f"GET /login?pw={urllib.parse.quote(value, safe='')}&x=1\n",
                    "json-escaped": "INFO " + json.dumps({"config": {"password": value}}) + "\n",
                }.get(form)
                if text is None:  # base64 at a given alignment, inside a larger encoded blob
                    shift = int(form.split("/")[1])
                    blob = base64.b64encode(b"xyz"[:shift] + value.encode() + b"tail")
                    if form.startswith("base64url"):
                        blob = base64.urlsafe_b64encode(b"xyz"[:shift] + value.encode() + b"tail")
                    text = f"DEBUG Authorization: Basic {blob.decode()}\n"
                planted.write_text("first line\n" + text)
                if not scan([planted], {name: value}):
                    problems.append(f"self-test: a planted {form} copy of {name} was not detected")
        planted.write_text("nothing secret here\n")
        if scan([planted], secrets):
            problems.append("self-test: a clean log was reported as leaking")
    return problems


def cmd_secrets(args: argparse.Namespace) -> int:
    secrets = env_file_secrets(pathlib.Path(args.env_file))
    for value in args.secret or []:
        secrets[f"--secret #{len(secrets)}"] = value
    if args.aws_endpoint:
        secrets.update(secrets_manager_secrets(args.aws_endpoint, args.region))
    if not secrets:
        log("no secrets found to look for: is the env file right?")
        return 2
    too_short = sorted(name for name, value in secrets.items() if len(value) < MIN_SECRET_LENGTH)
    problems = [f"{name}: shorter than {MIN_SECRET_LENGTH} characters, cannot be searched for reliably" for name in too_short]
    checkable = {name: value for name, value in secrets.items() if name not in too_short}
    problems += self_test_secrets(checkable)
    files = log_files([pathlib.Path(d) for d in args.log_dir], [pathlib.Path(f) for f in args.log_file or []])
    if not files:
        problems.append(f"no log files under {', '.join(args.log_dir)}: nothing was checked")
    hits = scan(files, checkable)
    size = sum(f.stat().st_size for f in files)
    log(f"secrets: {len(checkable)} values x {sum(len(forms(v)) for v in checkable.values())} forms "
        f"over {len(files)} log files ({size / 1e6:.1f} MB)")
    for problem in problems:
        log(f"FAIL {problem}")
    for hit in hits:
        log(f"LEAK {hit}")
    if not problems and not hits:
        log("secrets: no secret appears in any captured log")
    return 1 if problems or hits else 0


# ── loopback ───────────────────────────────────────────────────────────────────────────────────


def descendants(roots: set[int]) -> set[int]:
    parents: dict[int, list[int]] = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    seen, todo = set(), [p for p in roots if pathlib.Path(f"/proc/{p}").exists()]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(parents.get(pid, []))
    return seen


def local_address(field: str) -> tuple[str, int]:
    """`127.0.0.1:5432`, `[::1]:5432`, `*:80`, `0.0.0.0%lo:80` -> (host, port)."""
    host, _, port = field.rpartition(":")
    host = host.strip("[]").split("%")[0]
    return host, int(port) if port.isdigit() else -1


def is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # '*' and names: all interfaces or unknown
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def sockets(ss_output: str, pids: set[int]) -> tuple[list[str], list[tuple[int, str]]]:
    """Offending lines, and (port, line) of every socket of `pids`, from `ss -Hlntup` output."""
    offenders, owned = [], []
    for line in ss_output.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if not owners & pids:
            continue
        fields = line.split()
        if len(fields) < 5:
            continue
        host, port = local_address(fields[4])
        owned.append((port, line.strip()))
        if not is_loopback(host):
            offenders.append(line.strip())
    return offenders, owned


def self_test_loopback() -> list[str]:
    fake = "\n".join([
        'tcp   LISTEN 0 4096  127.0.0.1:39092  0.0.0.0:* users:(("tansu",pid=101,fd=9))',
        'tcp   LISTEN 0 128   [::1]:35432      [::]:*    users:(("postgres",pid=102,fd=6))',
        'tcp   LISTEN 0 128   0.0.0.0:35000    0.0.0.0:* users:(("python",pid=103,fd=3))',
        'tcp   LISTEN 0 128   [::]:35001       [::]:*    users:(("python",pid=103,fd=4))',
        'tcp   LISTEN 0 128   *:35002          *:*       users:(("python",pid=104,fd=4))',
        'udp   UNCONN 0 0     10.1.2.3:5353    0.0.0.0:* users:(("x",pid=104,fd=5))',
        'tcp   LISTEN 0 128   0.0.0.0:22       0.0.0.0:* users:(("sshd",pid=999,fd=3))',
    ])
    offenders, owned = sockets(fake, {101, 102, 103, 104})
    expected = {"0.0.0.0:35000", "[::]:35001", "*:35002", "10.1.2.3:5353"}
    found = {line.split()[4] for line in offenders}
    problems = []
    if found != expected:
        problems.append(f"self-test: expected offenders {sorted(expected)}, got {sorted(found)}")
    if len(owned) != 6:
        problems.append(f"self-test: expected 6 stack sockets, got {len(owned)}")
    return problems


def cmd_loopback(args: argparse.Namespace) -> int:
    roots = set(args.pid or [])
    run_dir = pathlib.Path(args.run_dir)
    for pid_file in sorted(run_dir.glob("*.pid")):
        try:
            roots.add(int(pid_file.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            continue
    pids = descendants(roots)
    problems = self_test_loopback()
    if not pids:
        problems.append(f"no running stack process found (pid files in {run_dir}): is the stack up?")
    try:
        output = subprocess.run(["ss", "-Hlntup"], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        log(f"cannot run ss (apt-get install -y iproute2): {error}")
        return 2
    offenders, owned = sockets(output, pids)
    seen_ports = {port for port, _ in owned}
    for port in args.expect_port or []:
        if port not in seen_ports:
            problems.append(f"no stack socket found on port {port}: the check would not see it")
    log(f"loopback: {len(pids)} stack processes, {len(owned)} sockets")
    for _, line in owned:
        log(f"  {line}")
    for problem in problems:
        log(f"FAIL {problem}")
    for line in offenders:
        log(f"EXPOSED {line}")
    if not problems and not offenders:
        log("loopback: every stack socket is bound to a loopback address")
    return 1 if problems or offenders else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    secrets = commands.add_parser("secrets")
    secrets.add_argument("--env-file", required=True)
    secrets.add_argument("--log-dir", action="append", required=True)
    secrets.add_argument("--log-file", action="append")
    secrets.add_argument("--secret", action="append", help="another value to look for")
    secrets.add_argument("--aws-endpoint")
    secrets.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    loopback = commands.add_parser("loopback")
    loopback.add_argument("--run-dir", required=True)
    loopback.add_argument("--pid", type=int, action="append")
    loopback.add_argument("--expect-port", type=int, action="append")
    args = parser.parse_args()
    return cmd_secrets(args) if args.command == "secrets" else cmd_loopback(args)


if __name__ == "__main__":
    sys.exit(main())
