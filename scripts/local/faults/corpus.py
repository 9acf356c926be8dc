"""The poison corpus of the fault tests: one record per way a value can be unusable, produced raw
into the topics between good records, each with the reason kind the consumer must report for it
(`PoisonReason::kind` in functions/domain/src/consume.rs).

Every partition of every topic gets at least one corpus record, so every partition has been
written (tansu answers ListOffsets only for written partitions) and each partition must get past
poison to store the good records produced after it.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import uuid
import zlib

# Over the consumer's 256 KiB value limit (consume::MAX_VALUE_BYTES), still far below the broker's.
OVERSIZE_BYTES = 300 * 1024

# A schema version id no registry has: fixed, so every run produces identical bytes.
UNKNOWN_SCHEMA_VERSION = uuid.UUID("00000000-0000-4000-8000-00000000dead")

# Past what one record may inflate to (limits::MAX_DECODED_RECORD_BYTES, 1 MiB): 2 MiB of zeros,
# about 2 KiB once zlib-compressed.
INFLATED_BYTES = 2 * 1024 * 1024

# An enum symbol this long would have been quoted in the reason (issue 12, item 2); reasons are
# now cut at limits::MAX_POISON_REASON_BYTES and never quote the value.
HUGE_SYMBOL_BYTES = 150 * 1024

# Explicit-event items are sized with DynamoDB's formula ("Item sizes and formats"): each `[1]` of
# the list costs 7 bytes as an item (1 per list element, 3 for the inner list, 1 + 2 for its
# element and number) but 4 bytes of JSON, so 60,000 of them are a 240 KB value (under the 256 KiB
# value limit) and an item of about 420 KB, over DynamoDB's 400 KB (409,600 bytes).
ITEM_LIST_ELEMENTS = 60_000

# 2026-01-01T00:00:00Z in milliseconds. Written as `timestamp-micros` it means 1970-01-21, before
# the consumer's earliest plausible event time (2000-01-01); read as milliseconds (the bug of issue
# 12, item 10) it would pass.
MICROS_SCHEMA_EVENT_TIME = 1767225600000

# A sensor reading whose writer schema declares `event_time` as `timestamp-micros`.
SENSOR_MICROS_SCHEMA = json.dumps({
    "type": "record", "name": "SensorReading", "namespace": "com.example.faults",
    "fields": [{"name": "device_id", "type": "string"},
               {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-micros"}},
               {"name": "temperature", "type": "double"}]})

# A JSON Schema version: the same 0x03 Glue header, but no Avro to decode.
JSON_SCHEMA_DEFINITION = json.dumps({"type": "object", "properties": {"device_id": {"type": "string"}}})


@dataclasses.dataclass(frozen=True)
class SchemaVersions:
    """Registered versions the corpus frames name."""
    sensor: uuid.UUID  # a SensorReading version, for a frame whose Avro body does not decode with it
    sensor_micros: uuid.UUID  # SENSOR_MICROS_SCHEMA
    json_schema: uuid.UUID  # JSON_SCHEMA_DEFINITION, DataFormat JSON


@dataclasses.dataclass(frozen=True)
class PoisonRecord:
    topic_key: str  # contract topic key
    partition: int
    description: str
    value: bytes | None
    reason_kind: str
    # Delivered by the (fault-injecting) ESM as a value that is not base64 at all: a Kafka record
    # always has bytes, so only a broken event source can produce this case.
    corrupt_in_event: bool = False
    key: bytes | None = b"corpus"


def _json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _glue(version: uuid.UUID, body: bytes, compression: int = 0x00) -> bytes:
    return bytes([0x03, compression]) + version.bytes + body


def _avro_long(n: int) -> bytes:
    """Avro's zig-zag varint."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _avro_sensor(device_id: str, event_time: int, temperature: float) -> bytes:
    text = device_id.encode()
    return _avro_long(len(text)) + text + _avro_long(event_time) + struct.pack("<d", temperature)


def corpus(versions: SchemaVersions) -> list[PoisonRecord]:
    sensor, store, explicit = "sensorReadings", "storeEvents", "explicitEvents"
    good_store = {
        "request_id": "corpus-1", "event_type": "sales_event", "store_id": 7, "cust_id": 11, "category": "shoes",
        "sku": 100657, "price": "12.50", "qty": 1, "discount": "0.00", "gift_wrap": False, "variant": "red",
        "priority_shipping": False, "ts": 1767225600000000, "contact_me": None,
    }
    return [
        PoisonRecord(sensor, 0, "bad base64 (delivered corrupt by the event source)",
                     _json({"device_id": "sensor-corpus", "event_time": 1767225600000, "temperature": 20.0}),
                     "bad_base64", corrupt_in_event=True),
        PoisonRecord(sensor, 0, "invalid JSON", b'{"device_id": "sensor-corpus", "event_time": 17', "bad_json"),
        PoisonRecord(sensor, 1, "truncated Glue header", bytes([0x03, 0x00, 0x12, 0x34, 0x56]), "truncated_header"),
        PoisonRecord(sensor, 1, "unknown Glue header (compression byte 0x07)",
                     _glue(UNKNOWN_SCHEMA_VERSION, b"\x02", compression=0x07), "unsupported_compression"),
        PoisonRecord(sensor, 1, "unknown wire format (first byte 0x7f)", b"\x7fELF-not-a-record", "unknown_wire_format"),
        PoisonRecord(sensor, 2, "unknown schema version", _glue(UNKNOWN_SCHEMA_VERSION, b"\x02\x04abcd"),
                     "unknown_schema_version"),
        PoisonRecord(sensor, 2, "Avro body that does not decode with its writer schema",
                     _glue(versions.sensor, b"\x0a"), "bad_avro"),
        PoisonRecord(sensor, 2, "wrong field types (JSON)",
                     _json({"device_id": 7, "event_time": "noon", "temperature": "warm"}), "bad_field"),
        PoisonRecord(sensor, 3, "value over the size limit",
                     _json({"device_id": "sensor-corpus", "padding": "x" * OVERSIZE_BYTES}), "too_large"),
        PoisonRecord(sensor, 3, "empty value", b"", "empty_value"),
        PoisonRecord(sensor, 3, "null value (tombstone)", None, "null_value"),
        PoisonRecord(store, 0, "wrong field types (store_id is a string)", _json({**good_store, "store_id": "seven"}),
                     "bad_field"),
        PoisonRecord(store, 1, "invalid JSON", b'{"request_id": "corpus-2", ', "bad_json"),
        PoisonRecord(store, 2, "null value (tombstone)", None, "null_value"),
        PoisonRecord(store, 3, "price over NUMERIC(12,2)", _json({**good_store, "price": "99999999999.99"}), "bad_field"),
        PoisonRecord(explicit, 0, "invalid JSON", b'{"order_id": "o-corpus", "amount": ', "bad_json"),
        PoisonRecord(explicit, 1, "empty value", b"", "empty_value"),
        PoisonRecord(explicit, 1, "unknown schema version", _glue(UNKNOWN_SCHEMA_VERSION, b"\x00"),
                     "unknown_schema_version"),
        # The poison kinds of the limits work (issue 12, items 1-4 and 10).
        PoisonRecord(sensor, 0, "zlib body that inflates past the 1 MiB bound",
                     _glue(versions.sensor, zlib.compress(b"\x00" * INFLATED_BYTES, 9), compression=0x05), "too_large"),
        PoisonRecord(store, 1, "unknown event_type symbol of 150 KiB (its reason must not quote it)",
                     _json({**good_store, "event_type": "x" * HUGE_SYMBOL_BYTES}), "bad_field"),
        PoisonRecord(sensor, 1, "Glue header naming a JSON Schema version",
                     _glue(versions.json_schema, _json({"device_id": "sensor-corpus"})), "unsupported_schema_format"),
        PoisonRecord(explicit, 0, "explicit event over DynamoDB's 400 KB item size (by AWS's formula)",
                     _json({"order_id": "o-corpus", "lines": [[1]] * ITEM_LIST_ELEMENTS}), "too_large"),
        PoisonRecord(sensor, 2, "implausible event time (year 2200)",
                     _json({"device_id": "sensor-corpus", "event_time": 7258118400000, "temperature": 20.0}),
                     "implausible_event_time"),
        PoisonRecord(sensor, 3, "timestamp-micros event time (1970-01-21 once read as micros)",
                     _glue(versions.sensor_micros, _avro_sensor("sensor-corpus", MICROS_SCHEMA_EVENT_TIME, 20.0)),
                     "implausible_event_time"),
    ]
