//! The error type operators return for a whole call.

use core::fmt;

/// An error for a whole call; maps to the WIT `operator-error` variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The configuration given to `init` is unusable.
    InvalidConfig(String),
    /// The input batch lacks the columns or types the operator needs.
    InvalidInput(String),
    /// Any other failure; the host retries, then bisects the batch.
    Failed(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidConfig`].
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Error::InvalidConfig(msg.into())
    }
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid_input(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
    /// Shorthand for [`Error::Failed`].
    pub fn failed(msg: impl Into<String>) -> Self {
        Error::Failed(msg.into())
    }
    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidConfig(m) | Error::InvalidInput(m) | Error::Failed(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig(m) => write!(f, "invalid config: {m}"),
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

impl std::error::Error for Error {}
