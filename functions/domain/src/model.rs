//! The payloads that travel through the pipeline, as plain Rust types.

use serde::{Deserialize, Serialize};

/// Where a Kafka record sits: enough to find it again, and the identity used for idempotency.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordCoordinates {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl RecordCoordinates {
    /// `topic-partition`, the key the ESM uses in its `records` map.
    pub fn topic_partition(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

impl std::fmt::Display for RecordCoordinates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}@{}", self.topic, self.partition, self.offset)
    }
}

/// One temperature reading (schema `SensorReading`, v1 and v2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorReading {
    pub device_id: String,
    /// Event time, epoch milliseconds (Avro `timestamp-millis`).
    pub event_time: i64,
    /// Degrees Celsius.
    pub temperature: f64,
    /// Relative humidity in percent; only v2 writers send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub humidity: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StoreEventType {
    #[serde(rename = "sales_event")]
    Sales,
    #[serde(rename = "inventory_event")]
    Inventory,
}

impl StoreEventType {
    /// The symbol used in the schema, the JSON payload and the S3 prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreEventType::Sales => "sales_event",
            StoreEventType::Inventory => "inventory_event",
        }
    }

    pub fn from_symbol(symbol: &str) -> Option<Self> {
        match symbol {
            "sales_event" => Some(StoreEventType::Sales),
            "inventory_event" => Some(StoreEventType::Inventory),
            _ => None,
        }
    }
}

/// A sale or inventory movement from a store (schema `StoreEvent`).
///
/// Money is kept in exact hundredths (the schema's `decimal(…, 2)`), never in floating point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreEvent {
    pub request_id: String,
    pub event_type: StoreEventType,
    pub store_id: i32,
    pub cust_id: i32,
    pub category: String,
    pub sku: i64,
    /// Price in hundredths of the currency unit.
    pub price_cents: i64,
    pub qty: i32,
    /// Discount in hundredths of a percent point (decimal(5,2)).
    pub discount_hundredths: i64,
    pub gift_wrap: bool,
    pub variant: String,
    pub priority_shipping: bool,
    /// Event time, epoch microseconds (Avro `timestamp-micros`).
    pub ts_micros: i64,
    pub contact_me: Option<String>,
}

/// Formats hundredths as a decimal string with two places, e.g. `-1234` → `"-12.34"`.
pub fn format_hundredths(value: i64) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Parses a decimal text with at most two fractional digits into hundredths, exactly.
pub fn parse_hundredths(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, f),
        None => (digits, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.chars().all(|c| c.is_ascii_digit()) || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // More than two places would silently round money: refuse instead, unless they are zeros.
    let significant_fraction = fraction.trim_end_matches('0');
    if significant_fraction.len() > 2 {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut cents_text = significant_fraction.to_string();
    while cents_text.len() < 2 {
        cents_text.push('0');
    }
    let cents: i64 = cents_text.parse().ok()?;
    let magnitude = whole.checked_mul(100)?.checked_add(cents)?;
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundredths_round_trip_exactly() {
        for (text, value) in [
            ("2.52", 252),
            ("0.5", 50),
            ("-12.34", -1234),
            ("7", 700),
            ("3.10", 310),
            (".25", 25),
        ] {
            assert_eq!(parse_hundredths(text), Some(value), "{text}");
        }
        assert_eq!(format_hundredths(252), "2.52");
        assert_eq!(format_hundredths(-5), "-0.05");
        assert_eq!(format_hundredths(700), "7.00");
    }

    #[test]
    fn hundredths_reject_what_would_lose_money() {
        for text in ["2.525", "abc", "", "-", "1.2.3", "1e5", "12,5"] {
            assert_eq!(parse_hundredths(text), None, "{text}");
        }
        assert_eq!(parse_hundredths("2.5000"), Some(250));
    }

    #[test]
    fn event_type_symbols_match_the_schema() {
        let schema = pipeline_contracts::contracts().schemas["StoreEvent"].latest_text();
        for t in [StoreEventType::Sales, StoreEventType::Inventory] {
            assert!(schema.contains(&format!("\"{}\"", t.as_str())));
            assert_eq!(StoreEventType::from_symbol(t.as_str()), Some(t));
        }
    }
}
