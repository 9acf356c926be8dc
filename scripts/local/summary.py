#!/usr/bin/env python3
"""Reads back what the local pipeline stored and shows it: per-device windows from DynamoDB, counts
in S3, PostgreSQL and the failure queues, and an HTML page with an inline SVG chart of per-device
average temperature over the windows.

Names come from contracts/pipeline.json; endpoints from the environment (source .local/stack.env).

Usage: summary.py [--html PATH] [--json PATH] [--max-rows N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import html
import json
import os
import pathlib
import subprocess
import sys
from decimal import Decimal

import boto3

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "scripts" / "local"))
import contract as contracts  # noqa: E402 - the harness's one contract reader

CONTRACT = contracts.load().raw
NAMES = CONTRACT["envVars"]
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"[summary] ERROR: {name} is not set; source .local/stack.env (scripts/local-stack.sh up writes it)")
    return value


def clients():
    session = boto3.Session(region_name=os.environ.get("AWS_REGION", "us-east-1"))
    endpoint = env("AWS_ENDPOINT_URL")
    return (
        session.client("dynamodb", endpoint_url=endpoint),
        session.client("s3", endpoint_url=endpoint),
        session.client("sqs", endpoint_url=endpoint),
    )


def number(attribute: dict) -> Decimal:
    return Decimal(attribute.get("N", attribute.get("S", "0")))


def scan_windows(dynamodb) -> list[dict]:
    table = os.environ.get(NAMES["aggregatesTable"], CONTRACT["tables"]["windowAggregates"]["name"])
    keys = CONTRACT["tables"]["windowAggregates"]
    rows, start = [], None
    while True:
        kwargs = {"TableName": table, **({"ExclusiveStartKey": start} if start else {})}
        page = dynamodb.scan(**kwargs)
        for item in page["Items"]:
            rows.append(
                {
                    "device": item[keys["partitionKey"]]["S"],
                    "window_start_ms": int(number(item[keys["sortKey"]])),
                    "window_end_ms": int(number(item.get("window_end", {"N": "0"}))),
                    "count": int(number(item.get("count", {"N": "0"}))),
                    "avg": float(number(item.get("avg", {"N": "0"}))),
                    "min": float(number(item.get("min", {"N": "0"}))),
                    "max": float(number(item.get("max", {"N": "0"}))),
                }
            )
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    rows.sort(key=lambda r: (r["device"], r["window_start_ms"]))
    return rows


def count_items(dynamodb, table: str, **filters) -> int:
    total, start = 0, None
    while True:
        kwargs = {"TableName": table, "Select": "COUNT", **filters, **({"ExclusiveStartKey": start} if start else {})}
        page = dynamodb.scan(**kwargs)
        total += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return total


def s3_counts(s3) -> dict:
    bucket = os.environ.get(NAMES["storeEventsBucket"], CONTRACT["bucket"]["localName"])
    counts = {}
    for label, prefix in (("archive", CONTRACT["bucket"]["storeEventsPrefix"]), ("poison", CONTRACT["bucket"]["oversizePoisonPrefix"])):
        objects, lines = 0, 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                objects += 1
                if obj["Key"].endswith(".gz"):
                    body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                    lines += sum(1 for line in gzip.decompress(body).splitlines() if line.strip())
        counts[label] = {"objects": objects, "records": lines}
    return counts


def postgres_counts() -> dict:
    pg = CONTRACT["postgres"]
    counts = {}
    for table in (pg["salesTable"], pg["inventoryTable"]):
        query = f'SELECT count(*) FROM "{table}"'
        result = subprocess.run(
            ["psql", "-X", "-tA", "-h", env(NAMES["pgHost"]), "-p", env(NAMES["pgPort"]), "-U", env("PIPELINE_PG_ADMIN_USER"),
             "-d", env(NAMES["pgDatabase"]), "-c", query],
            env={**os.environ, "PGPASSWORD": env("PIPELINE_PG_ADMIN_PASSWORD")},
            capture_output=True, text=True, check=False,
        )
        counts[table] = int(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip().isdigit() else None
    return counts


def queue_depths(sqs) -> dict:
    depths = {}
    for label, variable in (("poison", NAMES["poisonQueueUrl"]), ("onFailure", "ON_FAILURE_QUEUE_URL")):
        url = os.environ.get(variable)
        if not url:
            depths[label] = None
            continue
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        depths[label] = int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
    return depths


def hhmm(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def print_table(rows: list[dict], max_rows: int) -> None:
    header = f"{'device':<14} {'window start (UTC)':<20} {'count':>6} {'avg °C':>8} {'min °C':>8} {'max °C':>8}"
    print(header)
    print("-" * len(header))
    for row in rows[:max_rows]:
        print(f"{row['device']:<14} {hhmm(row['window_start_ms']):<20} {row['count']:>6} {row['avg']:>8.2f} {row['min']:>8.2f} {row['max']:>8.2f}")
    if len(rows) > max_rows:
        print(f"... {len(rows) - max_rows} more windows (all of them are in the HTML report)")


def svg_chart(rows: list[dict], width: int = 900, height: int = 420) -> str:
    """Average temperature per window, one line per device, min..max as a light band."""
    if not rows:
        return "<p>No windows stored yet.</p>"
    left, right, top, bottom = 60, 150, 20, 50
    xs = [r["window_start_ms"] for r in rows]
    ys = [v for r in rows for v in (r["min"], r["max"])]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def sx(x):
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y):
        return top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">']
    parts.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" fill="#fafafa" stroke="#ccc"/>')
    for i in range(6):
        value = y0 + (y1 - y0) * i / 5
        y = sy(value)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.1f}</text>')
    for i in range(5):
        value = x0 + (x1 - x0) * i / 4
        x = sx(value)
        label = dt.datetime.fromtimestamp(value / 1000, tz=dt.timezone.utc).strftime("%H:%M")
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{label}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 8}" text-anchor="middle">window start (UTC)</text>')
    parts.append(f'<text x="14" y="{(top + height - bottom) / 2}" transform="rotate(-90 14 {(top + height - bottom) / 2})" text-anchor="middle">temperature °C (avg; band = min..max)</text>')
    devices = sorted({r["device"] for r in rows})
    for index, device in enumerate(devices):
        color = PALETTE[index % len(PALETTE)]
        points = [r for r in rows if r["device"] == device]
        band = [f"{sx(r['window_start_ms']):.1f},{sy(r['max']):.1f}" for r in points]
        band += [f"{sx(r['window_start_ms']):.1f},{sy(r['min']):.1f}" for r in reversed(points)]
        parts.append(f'<polygon points="{" ".join(band)}" fill="{color}" fill-opacity="0.08" stroke="none"/>')
        line = " ".join(f"{sx(r['window_start_ms']):.1f},{sy(r['avg']):.1f}" for r in points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        for r in points:
            parts.append(
                f'<circle cx="{sx(r["window_start_ms"]):.1f}" cy="{sy(r["avg"]):.1f}" r="2.5" fill="{color}">'
                f'<title>{html.escape(device)} {hhmm(r["window_start_ms"])}: avg {r["avg"]:.2f} (n={r["count"]})</title></circle>'
            )
        ly = top + 14 + index * 16
        parts.append(f'<rect x="{width - right + 12}" y="{ly - 9}" width="12" height="3" fill="{color}"/>')
        parts.append(f'<text x="{width - right + 30}" y="{ly - 4}">{html.escape(device)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write_html(path: pathlib.Path, rows: list[dict], counts: dict) -> None:
    table_rows = "\n".join(
        f"<tr><td>{html.escape(r['device'])}</td><td>{hhmm(r['window_start_ms'])}</td><td>{r['count']}</td>"
        f"<td>{r['avg']:.2f}</td><td>{r['min']:.2f}</td><td>{r['max']:.2f}</td></tr>"
        for r in rows
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Local pipeline run</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ddd;padding:2px 8px;text-align:right}} td:first-child{{text-align:left}}</style>
</head><body>
<h1>Local pipeline run</h1>
<p>Generated {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S')} UTC from the local stack.</p>
<h2>Per-device temperature over {CONTRACT['defaults']['windowSeconds']} s windows</h2>
{svg_chart(rows)}
<h2>Where the records went</h2>
<pre>{html.escape(json.dumps(counts, indent=2))}</pre>
<h2>Windows ({len(rows)})</h2>
<table><tr><th>device</th><th>window start (UTC)</th><th>count</th><th>avg °C</th><th>min °C</th><th>max °C</th></tr>
{table_rows}
</table>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--html", type=pathlib.Path)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--max-rows", type=int, default=40)
    args = parser.parse_args()

    dynamodb, s3, sqs = clients()
    rows = scan_windows(dynamodb)
    explicit_table = os.environ.get(NAMES["explicitEventsTable"], CONTRACT["tables"]["explicitEvents"]["name"])
    counts = {
        "windows": len(rows),
        "sensorReadingsAggregated": sum(r["count"] for r in rows),
        "devices": len({r["device"] for r in rows}),
        # The table also holds one partition ledger item per partition, at offset -1.
        "explicitEvents": count_items(dynamodb, explicit_table, FilterExpression="#o >= :zero",
                                      ExpressionAttributeNames={"#o": CONTRACT["tables"]["explicitEvents"]["sortKey"]},
                                      ExpressionAttributeValues={":zero": {"N": "0"}}),
        "s3": s3_counts(s3),
        "postgres": postgres_counts(),
        "queues": queue_depths(sqs),
    }
    print()
    print_table(rows, args.max_rows)
    print()
    print(f"sensor readings aggregated : {counts['sensorReadingsAggregated']} in {counts['windows']} windows over {counts['devices']} devices")
    print(f"explicit events (DynamoDB) : {counts['explicitEvents']}")
    print(f"S3 archive                 : {counts['s3']['archive']['records']} store events in {counts['s3']['archive']['objects']} objects"
          f" (+{counts['s3']['poison']['objects']} oversize poison objects)")
    print(f"PostgreSQL                 : " + ", ".join(f"{t}={n}" for t, n in counts["postgres"].items()))
    print(f"failure queues             : poison={counts['queues']['poison']}, on-failure={counts['queues']['onFailure']}")
    if args.html:
        write_html(args.html, rows, counts)
        print(f"chart                      : {args.html}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"counts": counts, "windows": rows}, indent=2))


if __name__ == "__main__":
    main()
