//! A pipeline: consumer -> batcher -> decoder -> operator chain (with poison
//! isolation) -> outputs (Kafka topic and/or sink) and dead letters -> commit.
//! Offsets are committed only after everything derived from a batch was
//! acknowledged (see docs/delivery.md).

pub mod changelog;
pub mod command;
pub mod dead_letters;
pub mod decode;
pub mod output;
pub mod overlap;
pub mod source;
pub mod state;
pub mod tasks;
pub mod watermark;

mod checkpoint;
mod control;
mod error;
mod event_time;
mod handle;
mod run_batch;
mod sender;
mod transaction;
mod worker;

pub use error::PipelineError;
pub use handle::{PipelineControl, PipelineHandle, start, start_with_registry};
pub use run_batch::RECORD_ID_COLUMN;
use sender::Sender;
use transaction::TRANSACTION_TIMEOUT;
use worker::host_columns;
use handle::resolve_plugin;
use transaction::resume_retriable;

use crate::config::{ErrorPolicy, Guarantee, LatePolicy, PipelineConfig};
use crate::delivery::dead_letter::{DeadLetter, dead_letter_record};
use crate::delivery::isolate::run_isolated;
use crate::delivery::offsets::CommitPlan;
use crate::delivery::retry;
use crate::engine::{Engine, OperatorKind, SinkResult};
use crate::operator::{Chain, Operator};
use crate::registry::Registry;
use crate::telemetry::{Histograms, OperatorMetrics, PipelineLabels, PipelineState, PipelineStats};
use command::{OperatorSlot, PipelineCommand, RedriveReport, SwapReport, SwapRequest};
use arrow_array::RecordBatch;
use decode::RecordDecoder;
use output::OutRecord;
use rdkafka::consumer::CommitMode;
use rdkafka::consumer::Consumer;
use rdkafka::message::{OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::Message;
use source::{Cut, SourceConsumer};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The cores this process may run on (asked once: the standard library
/// reads the cgroup quota each time, and every batch asks).
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

struct Worker {
    name: String,
    config: PipelineConfig,
    stats: Arc<PipelineStats>,
    decoder: RecordDecoder,
    /// How result rows become output values (follows the chain, like `decoder`).
    emit: output::Emit,
    chain: Chain,
    sink: Option<Operator>,
    consumer: SourceConsumer,
    sender: Sender,
    control: Arc<watch::Sender<Option<String>>>,
    commands: mpsc::Receiver<PipelineCommand>,
    budget: VecDeque<(Instant, u64, u64)>,
    batch_seconds: prometheus_client::metrics::histogram::Histogram,
    /// Event-time progress (with `event_time` configured).
    watermarks: Option<watermark::Watermarks>,
    /// Per-partition chains and their checkpoints (with `state` configured).
    tasks: Option<tasks::Tasks>,
    /// Next offset after the last record delivered, per partition (whether
    /// a partition has caught up, for the watermark).
    consumed: std::collections::HashMap<(String, i32), i64>,
    /// Offset of the first record delivered per partition since it was
    /// assigned: where a partition without committed offsets is rewound to.
    started_at: std::collections::HashMap<(String, i32), i64>,
    /// Partitions an abort could not rewind yet: their records are not
    /// processed until a rewind (or a new assignment) positions them.
    unpositioned: std::collections::HashSet<(String, i32)>,
    /// Tasks reset by the last batch (their records are replayed, not committed).
    reset_tasks: std::collections::HashSet<i32>,
    /// At-least-once with state: the checkpoint being written in the background.
    state_write: Option<checkpoint::StateWrite>,
    /// What decoding and the chain cost per record (whether to overlap them).
    stage_costs: overlap::StageCosts,
}

