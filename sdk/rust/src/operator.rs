//! The operator traits, one per kind, and their result types.

use serde::de::DeserializeOwned;

use crate::state::KeyedState;
use crate::{Batch, Error, Selection};

/// A filter keeps or drops rows; it never changes them.
pub trait Filter: Sized + 'static {
    /// Configuration, deserialised from the pipeline's JSON (`{}` when none).
    type Config: DeserializeOwned;
    /// Creates the instance; called once before any batch.
    fn init(config: Self::Config) -> Result<Self, Error>;
    /// Columns this filter reads, called once after `init`. The host then
    /// passes only these columns (in batch order); `None` (default) = all.
    fn reads(&self) -> Option<Vec<String>> {
        None
    }
    /// Returns which rows of `batch` to keep.
    fn evaluate(&mut self, batch: &Batch) -> Result<Selection, Error>;
}

/// One row an operator refuses, with the reason (goes to the dead-letter topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRejection {
    /// Row index within the input batch.
    pub row: u32,
    /// Human-readable reason.
    pub reason: String,
}

impl RowRejection {
    /// A rejection of `row`.
    pub fn new(row: usize, reason: impl Into<String>) -> Self {
        RowRejection {
            row: row as u32,
            reason: reason.into(),
        }
    }
}

/// The result of [`Map::process`].
#[derive(Debug, Clone, PartialEq)]
pub struct MapOutput {
    /// Output rows: exactly as many as the input. Rejected rows stay here
    /// (with any values); the host removes them. When [`Map::reads`] is
    /// `Some`, holds only the added or replaced columns.
    pub batch: Batch,
    /// Rows to send to the dead-letter topic instead of the output.
    pub rejected: Vec<RowRejection>,
}

impl MapOutput {
    /// An output without rejections.
    pub fn new(batch: Batch) -> Self {
        MapOutput {
            batch,
            rejected: Vec::new(),
        }
    }
}

impl From<Batch> for MapOutput {
    fn from(batch: Batch) -> Self {
        MapOutput::new(batch)
    }
}

/// A map transforms a batch row for row; it may change the schema.
pub trait Map: Sized + 'static {
    /// Configuration, deserialised from the pipeline's JSON (`{}` when none).
    type Config: DeserializeOwned;
    /// Creates the instance; called once before any batch.
    fn init(config: Self::Config) -> Result<Self, Error>;
    /// Columns this map reads, called once after `init`. `None` (default):
    /// the map sees every column and its output replaces the input batch.
    /// `Some(cols)`: the map sees only `cols`, and its output batch holds only
    /// the columns it adds or replaces — the host replaces same-named input
    /// columns and appends the others, so untouched columns never cross.
    fn reads(&self) -> Option<Vec<String>> {
        None
    }
    /// Transforms `batch`; the output must have the same number of rows.
    fn process(&mut self, batch: Batch) -> Result<MapOutput, Error>;
}

/// A stateful aggregate: folds batches into state and emits result batches.
pub trait Aggregate: Sized + 'static {
    /// Configuration, deserialised from the pipeline's JSON (`{}` when none).
    type Config: DeserializeOwned;
    /// Creates the instance; called once before any batch.
    fn init(config: Self::Config) -> Result<Self, Error>;
    /// Columns this aggregate reads, called once after `init`. The host then
    /// passes only these columns (in batch order); `None` (default) = all.
    fn reads(&self) -> Option<Vec<String>> {
        None
    }
    /// Folds `batch` into the state; `watermark_ms` is the event time
    /// (ms since the epoch) before which no more input is expected.
    fn process(&mut self, batch: &Batch, watermark_ms: Option<i64>) -> Result<Vec<Batch>, Error>;
    /// Serialises the whole state.
    fn snapshot(&self) -> Result<Vec<u8>, Error>;
    /// Replaces the state with one produced by [`Aggregate::snapshot`].
    fn restore(&mut self, state: &[u8]) -> Result<(), Error>;

    /// The state as keyed entries, for incremental checkpoints: return the
    /// [`Windows`](crate::window::Windows) (or other [`KeyedState`]) that
    /// holds the state, e.g. `Some(&mut self.windows)`. `None` (default):
    /// each checkpoint stores the whole [`Aggregate::snapshot`] as one entry.
    fn keyed_state(&mut self) -> Option<&mut dyn KeyedState> {
        None
    }
}

/// Why a sink did not accept a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// Temporarily unavailable: the host retries the whole batch with backoff.
    Retryable(String),
    /// Can never be written: every row goes to the dead-letter topic.
    Permanent(String),
    /// Every row was written except these.
    RejectedRows(Vec<RowRejection>),
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkError::Retryable(m) => write!(f, "retryable: {m}"),
            SinkError::Permanent(m) => write!(f, "permanent: {m}"),
            SinkError::RejectedRows(r) => write!(f, "{} rows rejected", r.len()),
        }
    }
}

impl std::error::Error for SinkError {}

/// `Failed` becomes [`SinkError::Retryable`]; config and input errors
/// become [`SinkError::Permanent`].
impl From<Error> for SinkError {
    fn from(e: Error) -> Self {
        match e {
            Error::Failed(_) => SinkError::Retryable(e.to_string()),
            _ => SinkError::Permanent(e.to_string()),
        }
    }
}

/// A sink writes batches to an external system.
pub trait Sink: Sized + 'static {
    /// Configuration, deserialised from the pipeline's JSON (`{}` when none).
    type Config: DeserializeOwned;
    /// Creates the instance; called once before any batch.
    fn init(config: Self::Config) -> Result<Self, Error>;
    /// Columns this sink reads, called once after `init`. The host then
    /// passes only these columns (in batch order); `None` (default) = all.
    fn reads(&self) -> Option<Vec<String>> {
        None
    }
    /// Writes `batch`; `Ok` means every row is durably accepted.
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError>;
}
