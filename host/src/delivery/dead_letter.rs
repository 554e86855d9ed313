//! Dead-letter records: the original key, value and headers byte for byte,
//! plus `weir.error.*` / `weir.source.*` headers (and optionally Kafka
//! Connect's `__connect.errors.*` names so existing DLQ tooling reads them).

use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::Message;

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

/// The headers of a dead-letter record for `source`.
pub fn dead_letter_headers(source: &OwnedMessage, letter: &DeadLetter, connect_names: bool) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = source.headers() {
        for header in original.iter() {
            headers = headers.insert(Header { key: header.key, value: header.value });
        }
    }
    let partition = source.partition().to_string();
    let offset = source.offset().to_string();
    let timestamp = source.timestamp().to_millis().map(|t| t.to_string()).unwrap_or_default();
    let attempts = letter.attempts.to_string();
    let mut add = |key: &str, value: &str| {
        headers = std::mem::take(&mut headers).insert(Header { key, value: Some(value) });
    };
    add("weir.error.kind", &letter.kind);
    add("weir.error.message", &letter.message);
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
        add("__connect.errors.exception.message", &letter.message);
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
}
