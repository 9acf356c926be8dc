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
import uuid

# Over the consumer's 256 KiB value limit (consume::MAX_VALUE_BYTES), still far below the broker's.
OVERSIZE_BYTES = 300 * 1024

# A schema version id no registry has: fixed, so every run produces identical bytes.
UNKNOWN_SCHEMA_VERSION = uuid.UUID("00000000-0000-4000-8000-00000000dead")


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


def corpus(sensor_schema_version: uuid.UUID) -> list[PoisonRecord]:
    """`sensor_schema_version`: a registered SensorReading version, for a frame whose Avro body
    does not decode with it."""
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
                     _glue(sensor_schema_version, b"\x0a"), "bad_avro"),
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
    ]
