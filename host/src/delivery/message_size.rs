//! The largest record each topic takes: the producer's `message.max.bytes`,
//! lowered to the topic's `max.message.bytes` where the broker reports it
//! (asked once per topic; brokers that cannot answer leave the producer's).

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// librdkafka's default `message.max.bytes`.
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// How long to wait for a topic's config.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest record sizes per topic, learned lazily.
pub struct MessageLimits {
    producer_max: usize,
    admin: Option<AdminClient<DefaultClientContext>>,
    topics: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Debug for MessageLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageLimits").field("producer_max", &self.producer_max).finish_non_exhaustive()
    }
}

impl MessageLimits {
    /// Limits for a producer created from `config` (its `message.max.bytes`,
    /// and an admin client on the same brokers to read topic configs).
    pub fn new(config: &ClientConfig) -> MessageLimits {
        let producer_max = config.get("message.max.bytes").and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        let admin = match config.create::<AdminClient<DefaultClientContext>>() {
            Ok(admin) => Some(admin),
            Err(error) => {
                tracing::warn!(%error, "no admin client: topic size limits are not read from the broker");
                None
            }
        };
        MessageLimits { producer_max, admin, topics: Mutex::default() }
    }

    /// Limits that never ask a broker (tests, tools).
    pub fn fixed(producer_max: usize) -> MessageLimits {
        MessageLimits { producer_max, admin: None, topics: Mutex::default() }
    }

    /// The largest record `topic` takes, in bytes.
    pub async fn max_for(&self, topic: &str) -> usize {
        if let Some(max) = self.topics.lock().unwrap_or_else(|e| e.into_inner()).get(topic) {
            return *max;
        }
        let broker = self.topic_max(topic).await;
        let max = broker.map_or(self.producer_max, |b| b.min(self.producer_max));
        tracing::debug!(topic, max, ?broker, "largest record size");
        self.topics.lock().unwrap_or_else(|e| e.into_inner()).insert(topic.to_owned(), max);
        max
    }

    async fn topic_max(&self, topic: &str) -> Option<usize> {
        let admin = self.admin.as_ref()?;
        let options = AdminOptions::new().request_timeout(Some(DESCRIBE_TIMEOUT));
        let specifier = ResourceSpecifier::Topic(topic);
        let described = tokio::time::timeout(DESCRIBE_TIMEOUT, admin.describe_configs([&specifier], &options)).await;
        let resource = match described {
            Ok(Ok(mut results)) => results.pop()?.ok()?,
            Ok(Err(error)) => {
                tracing::debug!(topic, %error, "broker did not describe the topic config");
                return None;
            }
            Err(_) => return None,
        };
        resource.get("max.message.bytes")?.value.as_deref()?.parse().ok()
    }
}

/// Whether a produce failed because the record is too large (locally, by
/// librdkafka, or by the broker): retrying cannot help.
pub fn is_too_large(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge)
}
