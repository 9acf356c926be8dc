//! Record value wire formats.
//!
//! A value is either framed by the AWS Glue Schema Registry serializer:
//!
//! | byte(s) | meaning                                   |
//! |---------|-------------------------------------------|
//! | 0       | header version, always `0x03`             |
//! | 1       | compression: `0x00` none, `0x05` zlib     |
//! | 2..18   | schema version id (UUID, big-endian)      |
//! | 18..    | Avro binary body (zlib-deflated if 0x05)  |
//!
//! or it is plain JSON (what the seed producers send, and what the ESM delivers when its own
//! schema-registry integration converts records to JSON). The first byte tells them apart.

use std::borrow::Cow;
use std::io::{Read, Write};

use thiserror::Error;
use uuid::Uuid;

pub const GLUE_HEADER_VERSION: u8 = 0x03;
pub const GLUE_COMPRESSION_NONE: u8 = 0x00;
pub const GLUE_COMPRESSION_ZLIB: u8 = 0x05;
pub const GLUE_HEADER_LEN: usize = 18;

/// Upper bound on an inflated body, so a tiny zlib bomb cannot exhaust the function's memory
/// (see [`crate::limits::MAX_DECODED_RECORD_BYTES`]).
pub const MAX_INFLATED_BYTES: u64 = crate::limits::MAX_DECODED_RECORD_BYTES as u64;

/// A body may inflate to at most this many times its compressed size (see
/// [`crate::limits::MAX_INFLATE_RATIO`]).
pub const MAX_INFLATE_RATIO: u64 = crate::limits::MAX_INFLATE_RATIO as u64;

/// What a compressed body of `compressed_len` bytes may inflate to.
pub fn inflate_limit(compressed_len: usize) -> u64 {
    (compressed_len as u64)
        .saturating_mul(MAX_INFLATE_RATIO)
        .min(MAX_INFLATED_BYTES)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zlib,
}

/// A value, classified by its first byte.
#[derive(Debug, PartialEq, Eq)]
pub enum WireValue<'a> {
    GlueAvro(GlueFrame<'a>),
    Json(&'a [u8]),
}

/// A Glue-framed value whose body is still encoded (and possibly compressed).
#[derive(Debug, PartialEq, Eq)]
pub struct GlueFrame<'a> {
    pub schema_version_id: Uuid,
    pub compression: Compression,
    body: &'a [u8],
}

impl<'a> GlueFrame<'a> {
    /// The Avro body, inflated when the frame says zlib.
    pub fn avro_body(&self) -> Result<Cow<'a, [u8]>, WireError> {
        match self.compression {
            Compression::None => Ok(Cow::Borrowed(self.body)),
            Compression::Zlib => inflate(self.body).map(Cow::Owned),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("value is empty")]
    Empty,
    #[error("value starts with byte 0x{0:02x}: neither a Glue schema registry header (0x03) nor JSON")]
    UnknownFormat(u8),
    #[error("Glue header truncated: {0} bytes, need at least {GLUE_HEADER_LEN}")]
    TruncatedHeader(usize),
    #[error("Glue header has unsupported compression byte 0x{0:02x} (expected 0x00 or 0x05)")]
    UnsupportedCompression(u8),
    #[error("zlib body could not be inflated: {0}")]
    Inflate(String),
    #[error("zlib body of {compressed} bytes inflates beyond {limit} bytes (at most {MAX_INFLATE_RATIO} times its size, {MAX_INFLATED_BYTES} bytes in all)")]
    InflatedTooLarge { compressed: usize, limit: u64 },
}

/// Classifies a value by its first byte without copying it.
pub fn classify(value: &[u8]) -> Result<WireValue<'_>, WireError> {
    let first = *value.first().ok_or(WireError::Empty)?;
    match first {
        GLUE_HEADER_VERSION => parse_glue_frame(value).map(WireValue::GlueAvro),
        b'{' | b'[' | b' ' | b'\t' | b'\r' | b'\n' => Ok(WireValue::Json(value)),
        other => Err(WireError::UnknownFormat(other)),
    }
}

fn parse_glue_frame(value: &[u8]) -> Result<GlueFrame<'_>, WireError> {
    if value.len() < GLUE_HEADER_LEN {
        return Err(WireError::TruncatedHeader(value.len()));
    }
    let compression = match value[1] {
        GLUE_COMPRESSION_NONE => Compression::None,
        GLUE_COMPRESSION_ZLIB => Compression::Zlib,
        other => return Err(WireError::UnsupportedCompression(other)),
    };
    let mut id = [0u8; 16];
    id.copy_from_slice(&value[2..GLUE_HEADER_LEN]);
    Ok(GlueFrame {
        schema_version_id: Uuid::from_bytes(id),
        compression,
        body: &value[GLUE_HEADER_LEN..],
    })
}

/// Frames an Avro body the way the Glue serializer does.
pub fn frame(schema_version_id: Uuid, avro_body: &[u8], compression: Compression) -> Vec<u8> {
    let body: Cow<'_, [u8]> = match compression {
        Compression::None => Cow::Borrowed(avro_body),
        Compression::Zlib => Cow::Owned(deflate(avro_body)),
    };
    let mut out = Vec::with_capacity(GLUE_HEADER_LEN + body.len());
    out.push(GLUE_HEADER_VERSION);
    out.push(match compression {
        Compression::None => GLUE_COMPRESSION_NONE,
        Compression::Zlib => GLUE_COMPRESSION_ZLIB,
    });
    out.extend_from_slice(schema_version_id.as_bytes());
    out.extend_from_slice(&body);
    out
}

/// [`frame`] of the body `write_body` appends: without compression the body is written straight
/// after the header, into the one buffer that becomes the record's value.
pub fn frame_with(
    schema_version_id: Uuid,
    compression: Compression,
    body_hint: usize,
    write_body: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    match compression {
        Compression::None => {
            let mut out = Vec::with_capacity(GLUE_HEADER_LEN + body_hint);
            out.push(GLUE_HEADER_VERSION);
            out.push(GLUE_COMPRESSION_NONE);
            out.extend_from_slice(schema_version_id.as_bytes());
            write_body(&mut out);
            out
        }
        Compression::Zlib => {
            let mut body = Vec::with_capacity(body_hint);
            write_body(&mut body);
            frame(schema_version_id, &body, compression)
        }
    }
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    encoder.write_all(bytes).expect("in-memory write");
    encoder.finish().expect("in-memory write")
}

fn inflate(bytes: &[u8]) -> Result<Vec<u8>, WireError> {
    inflate_with_limit(bytes, inflate_limit(bytes.len()))
}

fn inflate_with_limit(bytes: &[u8], limit: u64) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    let mut limited = flate2::read::ZlibDecoder::new(bytes).take(limit + 1);
    limited
        .read_to_end(&mut out)
        .map_err(|e| WireError::Inflate(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(WireError::InflatedTooLarge {
            compressed: bytes.len(),
            limit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);

    #[test]
    fn uncompressed_frame_round_trips() {
        let framed = frame(ID, b"\x02avro", Compression::None);
        assert_eq!(framed[0], 0x03);
        assert_eq!(framed[1], 0x00);
        assert_eq!(&framed[2..18], ID.as_bytes());
        let WireValue::GlueAvro(parsed) = classify(&framed).unwrap() else {
            panic!("not glue")
        };
        assert_eq!(parsed.schema_version_id, ID);
        assert_eq!(parsed.compression, Compression::None);
        assert_eq!(&*parsed.avro_body().unwrap(), b"\x02avro");
    }

    #[test]
    fn zlib_frame_round_trips_and_is_really_compressed() {
        let body = b"device-0042 21.5 ".repeat(100);
        let framed = frame(ID, &body, Compression::Zlib);
        assert_eq!(framed[1], 0x05);
        assert!(framed.len() < 100, "a repeated phrase should deflate well");
        let WireValue::GlueAvro(parsed) = classify(&framed).unwrap() else {
            panic!("not glue")
        };
        assert_eq!(parsed.compression, Compression::Zlib);
        assert_eq!(&*parsed.avro_body().unwrap(), &body[..]);
    }

    #[test]
    fn json_is_recognised_by_its_first_byte() {
        assert_eq!(classify(b"{\"a\":1}").unwrap(), WireValue::Json(b"{\"a\":1}"));
        assert_eq!(classify(b"  {}").unwrap(), WireValue::Json(b"  {}"));
    }

    #[test]
    fn anything_else_is_rejected_with_a_reason() {
        assert_eq!(classify(b""), Err(WireError::Empty));
        assert_eq!(classify(b"\x00\x01"), Err(WireError::UnknownFormat(0)));
        assert_eq!(classify(b"hello"), Err(WireError::UnknownFormat(b'h')));
        assert_eq!(classify(b"\x03\x00\x01"), Err(WireError::TruncatedHeader(3)));
        let mut bad = frame(ID, b"x", Compression::None);
        bad[1] = 0x04;
        assert_eq!(classify(&bad), Err(WireError::UnsupportedCompression(4)));
        let msg = WireError::UnknownFormat(0x41).to_string();
        assert!(msg.contains("0x41"), "{msg}");
    }

    #[test]
    fn corrupt_zlib_body_is_an_error_not_a_panic() {
        let mut framed = frame(ID, b"some body", Compression::Zlib);
        let last = framed.len() - 1;
        framed[20..last].iter_mut().for_each(|b| *b = 0xff);
        let WireValue::GlueAvro(parsed) = classify(&framed).unwrap() else {
            panic!("not glue")
        };
        assert!(matches!(parsed.avro_body(), Err(WireError::Inflate(_))));
    }

    #[test]
    fn zlib_bombs_are_refused() {
        let huge = vec![0u8; (MAX_INFLATED_BYTES + 10) as usize];
        let framed = frame(ID, &huge, Compression::Zlib);
        let WireValue::GlueAvro(parsed) = classify(&framed).unwrap() else {
            panic!("not glue")
        };
        assert!(matches!(
            parsed.avro_body(),
            Err(WireError::InflatedTooLarge { .. })
        ));
    }

    #[test]
    fn a_body_may_inflate_to_its_limit_but_not_past_it() {
        let body = b"abcdefgh".repeat(1000);
        let compressed = deflate(&body);
        let limit = body.len() as u64;
        assert_eq!(inflate_with_limit(&compressed, limit).unwrap(), body);
        assert_eq!(
            inflate_with_limit(&compressed, limit - 1),
            Err(WireError::InflatedTooLarge {
                compressed: compressed.len(),
                limit: limit - 1
            })
        );
    }

    #[test]
    fn the_limit_is_the_ratio_times_the_compressed_size_capped_per_record() {
        assert_eq!(inflate_limit(100), 100 * MAX_INFLATE_RATIO);
        assert_eq!(
            inflate_limit(MAX_INFLATED_BYTES as usize / MAX_INFLATE_RATIO as usize),
            MAX_INFLATED_BYTES
        );
        assert_eq!(inflate_limit(usize::MAX), MAX_INFLATED_BYTES);
        // 100 KB of zeros deflate to about 100 bytes: a thousandfold, refused.
        let framed = frame(ID, &vec![0u8; 100_000], Compression::Zlib);
        let WireValue::GlueAvro(parsed) = classify(&framed).unwrap() else {
            panic!("not glue")
        };
        assert!(matches!(
            parsed.avro_body(),
            Err(WireError::InflatedTooLarge { limit, .. }) if limit < 100_000
        ));
    }
}
