//! Requests a running pipeline handles between batches: hot swap of one
//! operator and dead-letter redrive. Each carries a reply channel.

use crate::engine::{HttpAllowlist, OperatorKind};
use crate::operator::Operator;
use std::time::Duration;
use tokio::sync::oneshot;

/// A request to a pipeline, handled at the next batch boundary.
pub enum PipelineCommand {
    /// Replace one operator.
    Swap(SwapRequest),
    /// Replay dead letters through the current chain.
    Redrive(RedriveRequest),
    /// Run a candidate beside the live operator of the same name (or stop
    /// the current shadow run with `None`).
    Shadow(Option<crate::operator::shadow::Shadow>),
}

/// Replace the operator named `operator` by `replacement` (already
/// instantiated with the pipeline's config). Aggregate state moves from the
/// old instance to the new one; if that fails the old one stays.
pub struct SwapRequest {
    /// Operator (plugin) name in the pipeline.
    pub operator: String,
    /// The new operator.
    pub replacement: Operator,
    /// Receives the outcome.
    pub reply: oneshot::Sender<Result<SwapReport, String>>,
}

/// What a swap cost.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct SwapReport {
    /// Time the pipeline spent swapping (between two batches), in microseconds.
    pub pause_us: u64,
    /// Size of the aggregate state carried over, when there was one.
    pub state_bytes: Option<u64>,
}

/// Replay dead letters: read the DLQ from the redrive group's position (or
/// from `since_ms`) up to its end at the time of the request.
pub struct RedriveRequest {
    /// Start at the first dead letter at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// At most this many dead letters.
    pub limit: Option<u64>,
    /// Receives the outcome.
    pub reply: oneshot::Sender<Result<RedriveReport, String>>,
}

/// What a redrive did.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct RedriveReport {
    /// Dead letters read.
    pub read: u64,
    /// Records that now reached the output (or sink).
    pub delivered: u64,
    /// Records a filter dropped this time.
    pub filtered: u64,
    /// Records that failed again (back in the DLQ with `weir.attempts` incremented).
    pub dead_lettered: u64,
}

/// What the deployer needs to know about one operator slot of a pipeline.
#[derive(Debug, Clone)]
pub struct OperatorSlot {
    /// Operator (plugin) name.
    pub name: String,
    /// Its kind: a replacement must be of the same kind.
    pub kind: OperatorKind,
    /// Config JSON given to `init`.
    pub config_json: String,
    /// Hosts a sink may call.
    pub allowlist: HttpAllowlist,
}

/// How long a caller waits for a pipeline to reach its next batch boundary.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
