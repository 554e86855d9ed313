//! Dead-letter records: the original key, value and headers byte for byte,
//! plus `weir.error.*` / `weir.source.*` headers (and optionally Kafka
//! Connect's `__connect.errors.*` names so existing DLQ tooling reads them).
//!
//! `weir.*` headers that arrive on source records are dropped (a producer
//! cannot forge weir's error context), error texts are cut to
//! [`MAX_ERROR_TEXT_BYTES`], and a dead letter that would exceed the largest
//! record the topic takes is written without the original value (and, if
//! that is not enough, without the key and original headers): the
//! `weir.omitted` header says what was left out, `weir.value.size` and
//! `weir.value.sha256` identify it, and `weir.source.*` says where to read it.

use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::Message;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Longest error text written into a header; longer texts are cut.
pub const MAX_ERROR_TEXT_BYTES: usize = 2048;
/// Bytes kept free for a record's framing (batch header, lengths, timestamps).
pub const RECORD_OVERHEAD_BYTES: usize = 512;
/// Header naming what a dead letter left out: `value`, or `value,key,headers`.
pub const OMITTED_HEADER: &str = "weir.omitted";
/// Header with the size of the original value, in bytes, when it was left out.
pub const VALUE_SIZE_HEADER: &str = "weir.value.size";
/// Header with the hex SHA-256 of the original value, when it was left out.
pub const VALUE_SHA256_HEADER: &str = "weir.value.sha256";

/// Why a record was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Stable error kind (`decode`, `rejected`, `panic`, `deadline`, `sink_permanent`...).
    pub kind: String,
    /// Human-readable reason.
    pub message: String,
    /// Operator that failed (empty for decode errors).
    pub operator: String,
    /// Plugin version (SHA-256 prefix) of that operator, when known.
    pub plugin_version: String,
    /// Attempts made before giving up.
    pub attempts: u32,
}

impl DeadLetter {
    /// A dead letter without an operator (decoding, delivery).
    pub fn host(kind: impl Into<String>, message: impl Into<String>) -> Self {
        DeadLetter {
            kind: kind.into(),
            message: message.into(),
            operator: String::new(),
            plugin_version: String::new(),
            attempts: 1,
        }
    }
}

/// Whether a header name is in weir's namespace (`weir.`, any case).
pub fn is_weir_header(key: &str) -> bool {
    key.get(..5).is_some_and(|prefix| prefix.eq_ignore_ascii_case("weir."))
}

/// The headers of a source record that are carried to outputs and dead
/// letters: all but `weir.*` ones, which only weir may write.
pub fn passthrough_headers<H: Headers>(headers: Option<&H>) -> Option<OwnedHeaders> {
    let headers = headers?;
    if !headers.iter().any(|h| is_weir_header(h.key)) {
        let mut copy = OwnedHeaders::new_with_capacity(headers.count());
        for header in headers.iter() {
            copy = copy.insert(Header { key: header.key, value: header.value });
        }
        return Some(copy);
    }
    let mut kept = OwnedHeaders::new();
    let mut dropped = 0;
    for header in headers.iter() {
        if is_weir_header(header.key) {
            dropped += 1;
        } else {
            kept = kept.insert(Header { key: header.key, value: header.value });
        }
    }
    tracing::debug!(dropped, "dropped weir.* headers that arrived on a source record");
    Some(kept)
}

/// `text` cut to at most `max` bytes (at a character boundary), with a note
/// saying how much was cut.
pub fn truncate_text(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let note = format!("... [{} bytes cut]", text.len());
    let mut end = max.saturating_sub(note.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{note}", &text[..end]))
}

/// Bytes a record takes on the wire, close enough to compare with
/// `message.max.bytes` / `max.message.bytes`.
pub fn record_size<H: Headers>(key: Option<&[u8]>, value: Option<&[u8]>, headers: Option<&H>) -> usize {
    let headers = headers.map_or(0, |h| h.iter().map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len) + 10).sum());
    RECORD_OVERHEAD_BYTES + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len) + headers
}

/// A dead letter ready to produce.
#[derive(Debug)]
pub struct DeadLetterRecord<'a> {
    /// The source record's key (none when left out).
    pub key: Option<&'a [u8]>,
    /// The source record's value (none when left out).
    pub value: Option<&'a [u8]>,
    /// The source's headers (minus `weir.*`) and weir's.
    pub headers: OwnedHeaders,
}

/// The dead letter of `source` for `letter`, fitted under `max_bytes` (the
/// largest record the dead-letter topic takes) by leaving out the value,
/// then the key and original headers.
pub fn dead_letter_record<'a>(source: &'a OwnedMessage, letter: &DeadLetter, connect_names: bool, max_bytes: usize) -> DeadLetterRecord<'a> {
    let headers = dead_letter_headers(source, letter, connect_names);
    if record_size(source.key(), source.payload(), Some(&headers)) <= max_bytes {
        return DeadLetterRecord { key: source.key(), value: source.payload(), headers };
    }
    let value = source.payload().unwrap_or_default();
    let size = value.len().to_string();
    let sha256 = hex::encode(Sha256::digest(value));
    let omitted = |headers: OwnedHeaders, what: &str| {
        headers
            .insert(Header { key: OMITTED_HEADER, value: Some(what) })
            .insert(Header { key: VALUE_SIZE_HEADER, value: Some(&size) })
            .insert(Header { key: VALUE_SHA256_HEADER, value: Some(&sha256) })
    };
    let headers = omitted(headers, "value");
    if record_size(source.key(), None, Some(&headers)) <= max_bytes {
        tracing::warn!(topic = source.topic(), partition = source.partition(), offset = source.offset(), size = value.len(),
            "dead letter too large for its topic: written without the value (read it from the source by offset)");
        return DeadLetterRecord { key: source.key(), value: None, headers };
    }
    tracing::warn!(topic = source.topic(), partition = source.partition(), offset = source.offset(),
        "dead letter too large for its topic: written without value, key and original headers");
    let headers = omitted(weir_headers(OwnedHeaders::new(), source, letter, connect_names), "value,key,headers");
    DeadLetterRecord { key: None, value: None, headers }
}

/// The headers of a dead-letter record for `source`: its own (minus
/// `weir.*`) followed by weir's.
pub fn dead_letter_headers(source: &OwnedMessage, letter: &DeadLetter, connect_names: bool) -> OwnedHeaders {
    let headers = passthrough_headers(source.headers()).unwrap_or_default();
    weir_headers(headers, source, letter, connect_names)
}

/// `headers` with weir's error and source headers appended.
fn weir_headers(mut headers: OwnedHeaders, source: &OwnedMessage, letter: &DeadLetter, connect_names: bool) -> OwnedHeaders {
    let message = truncate_text(&letter.message, MAX_ERROR_TEXT_BYTES);
    let partition = source.partition().to_string();
    let offset = source.offset().to_string();
    let timestamp = source.timestamp().to_millis().map(|t| t.to_string()).unwrap_or_default();
    let attempts = letter.attempts.to_string();
    let mut add = |key: &str, value: &str| {
        headers = std::mem::take(&mut headers).insert(Header { key, value: Some(value) });
    };
    add("weir.error.kind", &letter.kind);
    add("weir.error.message", &message);
    add("weir.error.operator", &letter.operator);
    add("weir.error.plugin.version", &letter.plugin_version);
    add("weir.source.topic", source.topic());
    add("weir.source.partition", &partition);
    add("weir.source.offset", &offset);
    add("weir.source.timestamp", &timestamp);
    add("weir.attempts", &attempts);
    if connect_names {
        add("__connect.errors.topic", source.topic());
        add("__connect.errors.partition", &partition);
        add("__connect.errors.offset", &offset);
        add("__connect.errors.connector.name", "weir");
        add("__connect.errors.task.id", "0");
        add("__connect.errors.stage", if letter.operator.is_empty() { "VALUE_CONVERTER" } else { "TRANSFORMATION" });
        add("__connect.errors.class.name", &letter.operator);
        add("__connect.errors.exception.class.name", &format!("weir.{}", letter.kind));
        add("__connect.errors.exception.message", &message);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Timestamp;

    #[test]
    fn headers_keep_the_originals_and_add_weir_and_connect_names() {
        let original = OwnedHeaders::new().insert(Header { key: "trace-id", value: Some(&b"\x00\xffabc"[..]) });
        let source = OwnedMessage::new(
            Some(b"v".to_vec()),
            Some(b"k".to_vec()),
            "orders".into(),
            Timestamp::CreateTime(1234),
            2,
            99,
            Some(original),
        );
        let letter = DeadLetter { kind: "panic".into(), message: "boom".into(), operator: "enrich".into(), plugin_version: "abc".into(), attempts: 2 };
        let headers = dead_letter_headers(&source, &letter, true);
        let get = |key: &str| headers.iter().find(|h| h.key == key).and_then(|h| h.value).map(|v| v.to_vec());
        assert_eq!(get("trace-id").unwrap(), b"\x00\xffabc");
        assert_eq!(get("weir.error.kind").unwrap(), b"panic");
        assert_eq!(get("weir.source.partition").unwrap(), b"2");
        assert_eq!(get("weir.source.offset").unwrap(), b"99");
        assert_eq!(get("weir.source.timestamp").unwrap(), b"1234");
        assert_eq!(get("weir.attempts").unwrap(), b"2");
        assert_eq!(get("__connect.errors.exception.message").unwrap(), b"boom");
        assert!(dead_letter_headers(&source, &letter, false).iter().all(|h| !h.key.starts_with("__connect")));
    }

    fn message(value: Vec<u8>, headers: OwnedHeaders) -> OwnedMessage {
        OwnedMessage::new(Some(value), Some(b"k".to_vec()), "orders".into(), Timestamp::CreateTime(1), 0, 7, Some(headers))
    }

    #[test]
    fn forged_weir_headers_on_the_source_are_dropped() {
        let forged = OwnedHeaders::new()
            .insert(Header { key: "weir.error.kind", value: Some("forged") })
            .insert(Header { key: "WEIR.plugins", value: Some("evil@v9") })
            .insert(Header { key: "trace-id", value: Some("t") });
        let source = message(b"v".to_vec(), forged);
        let headers = dead_letter_headers(&source, &DeadLetter::host("decode", "bad"), false);
        let kinds: Vec<_> = headers.iter().filter(|h| h.key == "weir.error.kind").map(|h| h.value.unwrap().to_vec()).collect();
        assert_eq!(kinds, [b"decode".to_vec()], "only weir's own kind");
        assert!(headers.iter().all(|h| h.key != "WEIR.plugins"));
        assert!(headers.iter().any(|h| h.key == "trace-id"));
        let passed = passthrough_headers(source.headers()).unwrap();
        assert_eq!(passed.iter().map(|h| h.key).collect::<Vec<_>>(), ["trace-id"]);
    }

    #[test]
    fn long_error_texts_are_cut() {
        let source = message(b"v".to_vec(), OwnedHeaders::new());
        let letter = DeadLetter::host("decode", "é".repeat(100_000));
        let headers = dead_letter_headers(&source, &letter, true);
        for header in headers.iter() {
            assert!(header.value.unwrap().len() <= MAX_ERROR_TEXT_BYTES, "{}", header.key);
        }
        let text = String::from_utf8(headers.iter().find(|h| h.key == "weir.error.message").unwrap().value.unwrap().to_vec()).unwrap();
        assert!(text.ends_with("[200000 bytes cut]"), "{}", &text[text.len() - 40..]);
    }

    #[test]
    fn a_dead_letter_over_the_limit_leaves_the_value_out_and_says_so() {
        let value = vec![b'x'; 900_000];
        let source = message(value.clone(), OwnedHeaders::new().insert(Header { key: "trace-id", value: Some("t") }));
        let letter = DeadLetter::host("decode", String::from_utf8_lossy(&value).into_owned());
        let small = dead_letter_record(&source, &letter, false, 2_000_000);
        assert_eq!(small.value.map(<[u8]>::len), Some(900_000), "fits: kept");
        let record = dead_letter_record(&source, &letter, false, 800_000);
        assert_eq!(record.value, None);
        assert_eq!(record.key, Some(&b"k"[..]));
        let get = |key: &str| record.headers.iter().find(|h| h.key == key).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned());
        assert_eq!(get(OMITTED_HEADER).as_deref(), Some("value"));
        assert_eq!(get(VALUE_SIZE_HEADER).as_deref(), Some("900000"));
        assert_eq!(get(VALUE_SHA256_HEADER).unwrap(), hex::encode(Sha256::digest(&value)));
        assert_eq!(get("weir.source.offset").as_deref(), Some("7"));
        assert_eq!(get("trace-id").as_deref(), Some("t"));
        assert!(record_size(record.key, record.value, Some(&record.headers)) <= 800_000);
    }
}
