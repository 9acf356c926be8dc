//! AWS's documented limits that the pipeline relies on, each written once with the page it comes
//! from. Adapters enforce them before calling AWS (the local stack's moto enforces few of them) and
//! the in-memory fakes enforce the same numbers from the same constants, so a unit test sees what
//! AWS would refuse.
//!
//! Alongside them are the consumer's own bounds that are derived from these limits or from the
//! function's memory; each says what it is derived from.

// ---------------------------------------------------------------------------------------------
// Lambda

/// Largest synchronous invoke request, which is what a Kafka event source mapping sends: 6 MB
/// (6,291,456 bytes). Lambda developer guide, "Lambda quotas" (invocation payload, synchronous);
/// `API_CreateEventSourceMapping` (the batch is cut to fit it).
pub const LAMBDA_MAX_INVOKE_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// Memory configured for the consumer function: `functions::CONSUMER_MEMORY_MB` in
/// pipeline-contracts, which the CDK reads through the generated bindings. The consumer's decode
/// budgets below are derived from it.
pub const CONSUMER_MEMORY_BYTES: usize =
    pipeline_contracts::functions::CONSUMER_MEMORY_MB as usize * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// SQS

/// SQS message size: the queue's `MaximumMessageSize` defaults to 256 KiB (262,144 bytes) and may
/// be raised to 1 MiB; every part of every message attribute (name, type, value) counts towards
/// it. SQS developer guide, "Amazon SQS message quotas"; `API_SetQueueAttributes`. The poison queue
/// keeps the default, so this is the limit we enforce. We send no message attributes: the body is
/// the whole size.
pub const SQS_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The largest `MaximumMessageSize` a queue can be configured with (same pages).
pub const SQS_MAX_MESSAGE_BYTES_CONFIGURABLE: usize = 1024 * 1024;

/// `SendMessageBatch`: at most 10 entries, and the sum of the entries at most the message size
/// limit. SQS developer guide, "Amazon SQS message quotas" (message batch); `API_SendMessageBatch`.
pub const SQS_MAX_BATCH_ENTRIES: usize = 10;
pub const SQS_MAX_BATCH_BYTES: usize = SQS_MAX_MESSAGE_BYTES;

/// The size SQS counts for a message: body plus every attribute's name, data type and value
/// (`attributes` as `(name, data_type, value)`).
pub fn sqs_message_bytes(body: &str, attributes: &[(&str, &str, &[u8])]) -> usize {
    body.len()
        + attributes
            .iter()
            .map(|(name, data_type, value)| name.len() + data_type.len() + value.len())
            .sum::<usize>()
}

/// Packs entries into `SendMessageBatch` requests of at most 10 entries and 256 KiB of bodies, in
/// order (the SQS adapter and the in-memory queue send the same requests).
pub fn pack_send_message_batches<T>(entries: Vec<T>, body_bytes: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut requests: Vec<Vec<T>> = Vec::new();
    let mut size = 0;
    for entry in entries {
        let bytes = body_bytes(&entry);
        let fits = requests
            .last()
            .is_some_and(|r| r.len() < SQS_MAX_BATCH_ENTRIES && size + bytes <= SQS_MAX_BATCH_BYTES);
        if !fits {
            requests.push(Vec::new());
            size = 0;
        }
        size += bytes;
        if let Some(request) = requests.last_mut() {
            request.push(entry);
        }
    }
    requests
}

/// What SQS checks of one `SendMessageBatch` request (bodies only: we send no attributes).
pub fn check_send_message_batch(bodies: &[&str]) -> Result<(), String> {
    let total: usize = bodies.iter().map(|b| sqs_message_bytes(b, &[])).sum();
    if bodies.is_empty() || bodies.len() > SQS_MAX_BATCH_ENTRIES || total > SQS_MAX_BATCH_BYTES {
        return Err(format!(
            "a SendMessageBatch request of {} entries and {total} bytes is outside SQS's 1..={SQS_MAX_BATCH_ENTRIES} \
             entries and {SQS_MAX_BATCH_BYTES} bytes",
            bodies.len()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// DynamoDB

/// DynamoDB item size: at most 400 KB (409,600 bytes), attribute names included, counted by
/// [`crate::dynamodb_item::item_size`]. DynamoDB developer guide, "Service, account, and table quotas"
/// (item size) and "Item sizes and formats".
pub const DYNAMODB_MAX_ITEM_BYTES: usize = 400 * 1024;

/// `BatchWriteItem`: at most 25 put or delete requests and 16 MB per call. DynamoDB API
/// reference, `API_BatchWriteItem`.
pub const DYNAMODB_BATCH_WRITE_MAX_ITEMS: usize = 25;
pub const DYNAMODB_BATCH_WRITE_MAX_BYTES: usize = 16 * 1024 * 1024;

/// `BatchGetItem`: at most 100 keys and 16 MB per call. DynamoDB API reference,
/// `API_BatchGetItem`.
pub const DYNAMODB_BATCH_GET_MAX_KEYS: usize = 100;
pub const DYNAMODB_BATCH_GET_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Partition key values: at most 2,048 bytes. DynamoDB developer guide, "Service, account, and
/// table quotas" (partition key length).
pub const DYNAMODB_MAX_PARTITION_KEY_BYTES: usize = 2048;

/// Nested attributes: at most 32 levels. Same page (nested attribute depth).
pub const DYNAMODB_MAX_NESTING_DEPTH: usize = 32;

// ---------------------------------------------------------------------------------------------
// S3

/// A single `PutObject` uploads at most 5 GB (5 GiB). S3 user guide, "Uploading objects".
pub const S3_MAX_PUT_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// The consumer's own bounds, derived from the limits above

/// Largest record value the consumer accepts, after base64, before inflating. A Kafka record
/// cannot be larger than the invoke payload that carries it; this stays well under it so the
/// raw copy of a poison record fits the S3 offload comfortably.
pub const MAX_RECORD_VALUE_BYTES: usize = 256 * 1024;

/// Largest body one record may inflate to (zlib Glue frames) or, for JSON, be. Every sink holds far
/// less per record: an explicit event must fit a DynamoDB item, a sensor reading or a store event
/// is a few hundred bytes. Above it the record is `too_large` poison.
pub const MAX_DECODED_RECORD_BYTES: usize = 1024 * 1024;

/// A zlib body may inflate to at most this many times its compressed size. Avro records deflate
/// by a few times; a ratio far above this is a bomb, and bounding it per record bounds what a whole
/// batch can inflate to: the invoke payload carries at most 4.5 MiB of values (base64), so a batch
/// inflates to at most 64 × 4.5 MiB = 288 MiB, decoded and released one record at a time. Above it
/// the record is `too_large` poison.
pub const MAX_INFLATE_RATIO: usize = 64;

/// Decoded bytes the batch loop holds at once. A 6 MB batch of zlib records can inflate to far more
/// than the function's memory, so the loop decodes records in order and writes the sinks each time
/// this budget is reached. Held memory is a small multiple of the budget (parsed documents, their
/// sink rendering), so 1/32 of the function's memory keeps a batch far below it.
pub const MAX_DECODED_CHUNK_BYTES: usize = CONSUMER_MEMORY_BYTES / 32;

/// Largest archive line (one store event as NDJSON, coordinates included). A block holds at most
/// [`crate::consume::archive::BLOCK_OFFSETS`] lines, so a block can never grow past what the
/// archive reader accepts (checked at compile time in `archive`).
pub const MAX_ARCHIVE_LINE_BYTES: usize = 8 * 1024;

/// Poison reasons are cut to this many bytes (at a character boundary). They never quote the
/// record's value (the value travels raw next to them), so this only bounds library messages.
pub const MAX_POISON_REASON_BYTES: usize = 1024;

// Derived bounds must stay under the limits they derive from.
const _: () = assert!(MAX_RECORD_VALUE_BYTES < LAMBDA_MAX_INVOKE_PAYLOAD_BYTES);
const _: () = assert!(MAX_DECODED_CHUNK_BYTES >= MAX_DECODED_RECORD_BYTES);
const _: () = assert!(MAX_POISON_REASON_BYTES * 4 < SQS_MAX_MESSAGE_BYTES);
const _: () = assert!(SQS_MAX_MESSAGE_BYTES <= SQS_MAX_MESSAGE_BYTES_CONFIGURABLE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqs_counts_every_part_of_every_attribute() {
        assert_eq!(sqs_message_bytes("abc", &[]), 3);
        assert_eq!(sqs_message_bytes("abc", &[("n", "String", b"vv")]), 3 + 1 + 6 + 2);
    }
}
