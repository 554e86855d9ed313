//! Why a pipeline could not start or had to halt.


/// Why a pipeline could not start or had to halt.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// An operator could not be loaded or initialised.
    #[error("pipeline `{pipeline}`: operator `{operator}`: {source}")]
    Operator {
        /// Pipeline name.
        pipeline: String,
        /// Operator name.
        operator: String,
        /// Engine error.
        source: Box<crate::engine::Error>,
    },
    /// The configuration is unusable at run time.
    #[error("pipeline `{pipeline}`: {message}")]
    Setup {
        /// Pipeline name.
        pipeline: String,
        /// What is wrong.
        message: String,
    },
    /// A Kafka client error that retries did not fix.
    #[error("pipeline `{pipeline}`: Kafka: {source}")]
    Kafka {
        /// Pipeline name.
        pipeline: String,
        /// rdkafka's error.
        source: rdkafka::error::KafkaError,
    },
    /// The engine failed in a way bisection cannot isolate.
    #[error("pipeline `{pipeline}`: {source}")]
    Engine {
        /// Pipeline name.
        pipeline: String,
        /// Engine error.
        source: Box<crate::engine::Error>,
    },
    /// Policy `stop`: a record failed; nothing at or after it was committed.
    #[error("pipeline `{pipeline}` stopped at {topic}/{partition}@{offset}: {kind}: {message}")]
    Stopped {
        /// Pipeline name.
        pipeline: String,
        /// Topic of the failed record.
        topic: String,
        /// Partition of the failed record.
        partition: i32,
        /// Offset of the failed record.
        offset: i64,
        /// Error kind.
        kind: String,
        /// Error message.
        message: String,
    },
    /// Produce kept failing after every retry; nothing was committed.
    #[error("pipeline `{pipeline}`: could not deliver {count} record(s) to `{topic}` after {attempts} attempts: {last_error}")]
    Delivery {
        /// Pipeline name.
        pipeline: String,
        /// Topic that failed.
        topic: String,
        /// Records not delivered.
        count: usize,
        /// Attempts made.
        attempts: u32,
        /// Last error.
        last_error: String,
    },
}
