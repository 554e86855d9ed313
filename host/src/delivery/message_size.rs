//! The largest record each topic takes: the producer's `message.max.bytes`,
//! lowered to the topic's `max.message.bytes` where the broker reports it
//! (asked once per topic; brokers that cannot answer leave the producer's).

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// librdkafka's default `message.max.bytes`.
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// How long to wait for a topic's config.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest record sizes per topic. The broker's answer is fetched in the
/// background the first time a topic is asked for (some brokers never
/// answer DescribeConfigs, and a produce must not wait for them); until it
/// arrives the producer's own limit applies, and a broker refusing a record
/// as too large is handled like a record over the limit.
#[derive(Clone)]
pub struct MessageLimits {
    producer_max: usize,
    admin: Option<Arc<AdminClient<DefaultClientContext>>>,
    topics: Arc<Mutex<HashMap<String, usize>>>,
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
            Ok(admin) => Some(Arc::new(admin)),
            Err(error) => {
                tracing::warn!(%error, "no admin client: topic size limits are not read from the broker");
                None
            }
        };
        MessageLimits { producer_max, admin, topics: Arc::default() }
    }

    /// Limits that never ask a broker (tests, tools).
    pub fn fixed(producer_max: usize) -> MessageLimits {
        MessageLimits { producer_max, admin: None, topics: Arc::default() }
    }

    /// The largest record `topic` takes, in bytes, as known now. The first
    /// call for a topic starts asking the broker (inside a Tokio runtime).
    pub fn max_for(&self, topic: &str) -> usize {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(max) = topics.get(topic) {
            return *max;
        }
        topics.insert(topic.to_owned(), self.producer_max);
        drop(topics);
        if let (Some(admin), Ok(runtime)) = (self.admin.clone(), tokio::runtime::Handle::try_current()) {
            let (topics, topic, producer_max) = (self.topics.clone(), topic.to_owned(), self.producer_max);
            runtime.spawn(async move {
                if let Some(broker) = topic_max(&admin, &topic).await {
                    let max = broker.min(producer_max);
                    tracing::debug!(%topic, max, broker, "largest record size from the topic config");
                    topics.lock().unwrap_or_else(|e| e.into_inner()).insert(topic, max);
                }
            });
        }
        self.producer_max
    }
}

/// The topic's `max.message.bytes`, when the broker answers in time.
async fn topic_max(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Option<usize> {
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

/// Whether a produce failed because the record is too large (locally, by
/// librdkafka, or by the broker): retrying cannot help.
pub fn is_too_large(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge)
}
