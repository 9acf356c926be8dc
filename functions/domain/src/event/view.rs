//! The ESM event borrowed from the invocation body: the consumer's fast path.
//!
//! [`EventView::parse`] accepts exactly the bodies `serde_json::from_slice::<KafkaEvent>` accepts
//! and yields the same records (the fuzz target `fast_path` and the differential tests check it),
//! but copies nothing it can borrow: topics, keys and values stay `&str` slices of the body unless
//! JSON escapes force an owned copy, and headers are checked for the ESM's shape (signed 16-bit
//! numbers) without building the per-record maps the owned form holds; those are built only for
//! a record that is set aside as poison ([`EsmRecord::raw_headers`]).
//!
//! Acceptance matches the owned form because both are derived by serde from the same field list:
//! the same names, defaults, duplicate-field errors and tolerance of unknown fields. The only
//! hand-written visitors are for `records` (a map whose repeated key keeps its last value, in key
//! order, like the owned `BTreeMap`) and `headers`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{EsmBatch, EsmRecord, EventSource, KafkaEvent, KafkaRecord, RawHeader, TimestampType};

/// A JSON string borrowed from the body, or owned when it holds escapes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The ESM event, borrowed from the invocation body.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView<'a> {
    pub event_source: EventSource,
    #[serde(default, borrow)]
    pub event_source_arn: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub bootstrap_servers: Option<Text<'a>>,
    /// `(topic-partition, records)` in key order, each key once.
    #[serde(borrow, rename = "records")]
    partitions: Partitions<'a>,
}

/// One record, borrowed from the invocation body.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordView<'a> {
    #[serde(borrow)]
    pub topic: Text<'a>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    #[serde(default, borrow)]
    pub key: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub value: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub headers: Option<HeadersView<'a>>,
}

impl<'a> EventView<'a> {
    /// Parses an invocation body; `Err` for every body the owned parse refuses.
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        let mut event: Self = serde_json::from_slice(body)?;
        let located = event
            .partitions
            .0
            .iter_mut()
            .flat_map(|(_, records)| records.iter_mut())
            .filter_map(|record| record.headers.as_mut())
            .all(|headers| headers.locate_values(body));
        if !located {
            return Err(serde::de::Error::custom(
                "a header's values are not an array of 16-bit integers",
            ));
        }
        event.partitions = event.partitions.into_key_order();
        Ok(event)
    }

    /// All records, partition by partition, each partition as delivered.
    pub fn records(&self) -> impl Iterator<Item = &RecordView<'a>> {
        self.partitions.0.iter().flat_map(|(_, records)| records)
    }

    pub fn record_count(&self) -> usize {
        self.partitions.0.iter().map(|(_, records)| records.len()).sum()
    }

    /// `(topic-partition, records)` in key order.
    pub fn partitions(&self) -> impl Iterator<Item = (&str, &[RecordView<'a>])> {
        self.partitions.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The owned event with the same content (what the owned parse of the same body gives).
    pub fn to_owned_event(&self) -> KafkaEvent {
        KafkaEvent {
            event_source: self.event_source.clone(),
            event_source_arn: self.event_source_arn.as_ref().map(|t| t.as_str().to_string()),
            bootstrap_servers: self.bootstrap_servers.as_ref().map(|t| t.as_str().to_string()),
            records: self
                .partitions()
                .map(|(key, records)| {
                    (
                        key.to_string(),
                        records.iter().map(RecordView::to_owned_record).collect(),
                    )
                })
                .collect(),
        }
    }
}

impl<'a> EsmBatch for EventView<'a> {
    type Record = RecordView<'a>;
    fn records(&self) -> impl Iterator<Item = &Self::Record> {
        EventView::records(self)
    }
    fn record_count(&self) -> usize {
        EventView::record_count(self)
    }
}

impl RecordView<'_> {
    pub fn to_owned_record(&self) -> KafkaRecord {
        KafkaRecord {
            topic: self.topic.as_str().to_string(),
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            key: self.key.as_ref().map(|t| t.as_str().to_string()),
            value: self.value.as_ref().map(|t| t.as_str().to_string()),
            headers: self.raw_headers(),
        }
    }
}

impl EsmRecord for RecordView<'_> {
    fn topic(&self) -> &str {
        self.topic.as_str()
    }
    fn partition(&self) -> i32 {
        self.partition
    }
    fn offset(&self) -> i64 {
        self.offset
    }
    fn timestamp(&self) -> i64 {
        self.timestamp
    }
    fn timestamp_type(&self) -> TimestampType {
        self.timestamp_type
    }
    fn key(&self) -> Option<&str> {
        self.key.as_ref().map(Text::as_str)
    }
    fn value(&self) -> Option<&str> {
        self.value.as_ref().map(Text::as_str)
    }
    fn raw_headers(&self) -> Option<Vec<RawHeader>> {
        self.headers.as_ref().map(HeadersView::to_raw)
    }
}

/// The `records` map: in body order while parsing, then (in [`EventView::parse`]) in key order
/// with a repeated key keeping its last value, as the owned form's `BTreeMap` has them.
#[derive(Debug, Clone, PartialEq)]
struct Partitions<'a>(Vec<(Text<'a>, Vec<RecordView<'a>>)>);

impl Partitions<'_> {
    /// Key order, each key once with the value delivered last, as in the owned `BTreeMap`.
    fn into_key_order(mut self) -> Self {
        // Last first, then a stable sort: the first of each run of equal keys is the one
        // delivered last.
        self.0.reverse();
        self.0.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        self.0.dedup_by(|later, kept| later.0 == kept.0);
        self
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Partitions<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PartitionsVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for PartitionsVisitor<'a> {
            type Value = Partitions<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut partitions: Vec<(Text<'a>, Vec<RecordView<'a>>)> = Vec::new();
                while let Some(key) = map.next_key::<Text<'a>>()? {
                    let records = map.next_value()?;
                    partitions.push((key, records));
                }
                // In body order: a repeated key is dropped only after its records' headers are
                // checked ([`Partitions::into_key_order`]), as the owned parse checks them too.
                Ok(Partitions(partitions))
            }
        }
        deserializer.deserialize_map(PartitionsVisitor(std::marker::PhantomData))
    }
}

/// A record's headers as delivered (a list of single-entry maps from name to signed bytes),
/// checked but kept flat: one entry per name, tagged with the map it came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeadersView<'a> {
    maps: usize,
    entries: Vec<(usize, Text<'a>, HeaderValues<'a>)>,
}

/// One header's values, built only for poison. During the parse they are only scanned as JSON;
/// once it is done, [`EventView::parse`] finds their text again right after their (borrowed)
/// name and checks it is what the owned form's `Vec<i16>` accepts ([`is_i16_array`]). A name
/// with escapes has no place in the body, so its values are built during the parse.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HeaderValues<'a> {
    Built(Vec<i16>),
    /// Scanned as some JSON value, not yet checked.
    Scanned,
    /// The `[...]` text of checked values: signed 16-bit integers, commas, whitespace.
    InBody(&'a str),
}

impl HeaderValues<'_> {
    fn to_vec(&self) -> Vec<i16> {
        match self {
            HeaderValues::Built(values) => values.clone(),
            // The text was checked as exactly this type when the body was parsed, so this parse
            // cannot fail; the fuzz target compares every header with the owned parse.
            HeaderValues::InBody(text) => serde_json::from_str(text).unwrap_or_default(),
            HeaderValues::Scanned => Vec::new(),
        }
    }
}

impl<'a> HeadersView<'a> {
    /// The headers in the owned form's shape (a repeated name in one map keeps its last values).
    pub fn to_raw(&self) -> Vec<RawHeader> {
        let mut raw = vec![RawHeader::new(); self.maps];
        for (map, name, values) in &self.entries {
            if let Some(header) = raw.get_mut(*map) {
                header.insert(name.as_str().to_string(), values.to_vec());
            }
        }
        raw
    }

    /// Finds each scanned header's values in `body` and checks them; `false` if one is not an
    /// array of signed 16-bit integers.
    fn locate_values(&mut self, body: &'a [u8]) -> bool {
        for (_, name, values) in &mut self.entries {
            if let (HeaderValues::Scanned, Cow::Borrowed(name)) = (&*values, &name.0) {
                match values_after(body, name).filter(|text| is_i16_array(text)) {
                    Some(text) => *values = HeaderValues::InBody(text),
                    None => return false,
                }
            }
        }
        true
    }
}

/// The `[...]` that follows the string `name` (a slice of `body`) and its colon.
fn values_after<'a>(body: &'a [u8], name: &'a str) -> Option<&'a str> {
    let start = (name.as_ptr() as usize).checked_sub(body.as_ptr() as usize)? + name.len();
    let rest = body.get(start..)?;
    let mut at = 0;
    let mut expect = |wanted: u8, skip_space: bool| -> Option<()> {
        if skip_space {
            at += rest.get(at..)?.iter().take_while(|b| is_json_space(**b)).count();
        }
        (*rest.get(at)? == wanted).then(|| at += 1)
    };
    expect(b'"', false)?;
    expect(b':', true)?;
    expect(b'[', true)?;
    let open = at - 1;
    // An array of integers holds no other bracket, so the first `]` closes it; anything else
    // is cut short here and then refused by `is_i16_array`.
    let close = open + rest.get(open..)?.iter().position(|b| *b == b']')?;
    std::str::from_utf8(rest.get(open..=close)?).ok()
}

fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Whether `text` (`[` to `]`) is exactly what `serde_json` accepts as a `Vec<i16>`: JSON
/// integers (no fraction or exponent, no leading zeros) in -32768..=32767, comma-separated, no
/// trailing comma, JSON whitespace anywhere between tokens. `-0` is refused: serde_json reads it
/// as the float -0.0, which no integer type accepts.
fn is_i16_array(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return false;
    };
    let bytes = inner.as_bytes();
    let skip_space = |mut at: usize| {
        while bytes.get(at).copied().is_some_and(is_json_space) {
            at += 1;
        }
        at
    };
    let mut at = skip_space(0);
    if at == bytes.len() {
        return true;
    }
    loop {
        let negative = bytes.get(at) == Some(&b'-');
        at += usize::from(negative);
        let start = at;
        let mut magnitude: i32 = 0;
        while let Some(digit) = bytes.get(at).filter(|b| b.is_ascii_digit()) {
            if at - start == 5 {
                return false;
            }
            magnitude = magnitude * 10 + i32::from(digit - b'0');
            at += 1;
        }
        let leading_zero = bytes.get(start) == Some(&b'0');
        let value = if negative { -magnitude } else { magnitude };
        if at == start || (leading_zero && (at - start > 1 || negative)) || i16::try_from(value).is_err() {
            return false;
        }
        at = skip_space(at);
        match bytes.get(at) {
            None => return true,
            Some(b',') => at = skip_space(at + 1),
            Some(_) => return false,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for HeadersView<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ListVisitor<'a> {
            type Value = HeadersView<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut headers = HeadersView::default();
                loop {
                    let seed = OneMap {
                        index: headers.maps,
                        entries: &mut headers.entries,
                    };
                    if seq.next_element_seed(seed)?.is_none() {
                        return Ok(headers);
                    }
                    headers.maps += 1;
                }
            }
        }
        deserializer.deserialize_seq(ListVisitor(std::marker::PhantomData))
    }
}

/// One header map, appended to the flat entry list.
struct OneMap<'v, 'a> {
    index: usize,
    entries: &'v mut Vec<(usize, Text<'a>, HeaderValues<'a>)>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for OneMap<'_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for OneMap<'_, 'a> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        while let Some(name) = map.next_key::<Text<'a>>()? {
            let values = match name.0 {
                Cow::Borrowed(_) => {
                    map.next_value::<IgnoredAny>()?;
                    HeaderValues::Scanned
                }
                Cow::Owned(_) => HeaderValues::Built(map.next_value()?),
            };
            self.entries.push((self.index, name, values));
        }
        Ok(())
    }
}
