//! Errors of the engine: loading components and calling operators.

use std::fmt;

/// Result of engine operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a guest call ended abnormally (the instance is unusable afterwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrapKind {
    /// The guest panicked (Rust `panic!`, Python exception escaping, `abort()`).
    Panic,
    /// The guest hit an `unreachable` instruction for another reason.
    Unreachable,
    /// The guest asked for more memory than its limit allows.
    OutOfMemory,
    /// The call ran past its deadline (epoch interruption).
    Deadline,
    /// The call used up its fuel budget.
    FuelExhausted,
    /// The guest's call stack overflowed.
    StackOverflow,
    /// A memory access out of bounds, bad indirect call, integer overflow...
    Fault,
    /// The guest returned a value the host cannot read (bad string, bad enum).
    BadReturn,
}

impl TrapKind {
    /// Stable lower-case name, used in metrics labels and DLQ headers.
    pub fn as_str(self) -> &'static str {
        match self {
            TrapKind::Panic => "panic",
            TrapKind::Unreachable => "unreachable",
            TrapKind::OutOfMemory => "out_of_memory",
            TrapKind::Deadline => "deadline",
            TrapKind::FuelExhausted => "fuel_exhausted",
            TrapKind::StackOverflow => "stack_overflow",
            TrapKind::Fault => "fault",
            TrapKind::BadReturn => "bad_return",
        }
    }
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operator kind a component implements (its WIT world).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperatorKind {
    /// `weir:operator/filter-operator`.
    Filter,
    /// `weir:operator/map-operator`.
    Map,
    /// `weir:operator/aggregate-operator`.
    Aggregate,
    /// `weir:operator/sink-operator`.
    Sink,
}

impl OperatorKind {
    /// Lower-case name (`filter`, `map`, `aggregate`, `sink`).
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorKind::Filter => "filter",
            OperatorKind::Map => "map",
            OperatorKind::Aggregate => "aggregate",
            OperatorKind::Sink => "sink",
        }
    }

    /// The fully qualified name of the interface a component of this kind exports.
    pub fn export_name(self) -> &'static str {
        match self {
            OperatorKind::Filter => "weir:operator/filter@0.1.2",
            OperatorKind::Map => "weir:operator/map@0.1.2",
            OperatorKind::Aggregate => "weir:operator/aggregate@0.1.2",
            OperatorKind::Sink => "weir:operator/sink@0.1.2",
        }
    }

    /// All kinds, in a fixed order.
    pub const ALL: [OperatorKind; 4] = [
        OperatorKind::Filter,
        OperatorKind::Map,
        OperatorKind::Aggregate,
        OperatorKind::Sink,
    ];
}

impl fmt::Display for OperatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors from loading plugins and calling operators.
///
/// `Trap` and `Guest` are the two layers of a failed call: a trap means the
/// instance died (the host replaces it), a guest error is a value the
/// operator returned on purpose (the instance lives on).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not WebAssembly at all.
    #[error("plugin `{plugin}` is not a WebAssembly binary (bad magic number)")]
    NotWasm {
        /// Plugin name.
        plugin: String,
    },
    /// A core module where a component is required.
    #[error(
        "plugin `{plugin}` is a core WebAssembly module, not a component: build it for \
         wasm32-wasip2 (or run `wasm-tools component new` on it)"
    )]
    CoreModule {
        /// Plugin name.
        plugin: String,
    },
    /// The component failed to parse, validate or compile.
    #[error("plugin `{plugin}` failed to compile: {reason}")]
    Compile {
        /// Plugin name.
        plugin: String,
        /// Wasmtime's explanation.
        reason: String,
    },
    /// The component exports none (or more than one) of the operator interfaces.
    #[error("plugin `{plugin}` does not implement a weir operator world: {reason}")]
    UnknownWorld {
        /// Plugin name.
        plugin: String,
        /// What was found instead.
        reason: String,
    },
    /// The component is a valid operator, but of another kind than required.
    #[error("plugin `{plugin}` is a {found} operator, but a {expected} operator is required here")]
    WrongKind {
        /// Plugin name.
        plugin: String,
        /// Kind required by the caller.
        expected: OperatorKind,
        /// Kind the component implements.
        found: OperatorKind,
    },
    /// The component imports something the sandbox does not provide.
    #[error("plugin `{plugin}` cannot be linked: {reason}")]
    Link {
        /// Plugin name.
        plugin: String,
        /// Missing import or type mismatch, as reported by wasmtime.
        reason: String,
    },
    /// Creating or initialising an instance failed without a trap.
    #[error("plugin `{plugin}` could not be instantiated: {reason}")]
    Instantiate {
        /// Plugin name.
        plugin: String,
        /// Reason reported by wasmtime.
        reason: String,
    },
    /// The guest trapped; the instance was discarded.
    #[error("plugin `{plugin}` trapped ({kind}) in `{function}`: {message}")]
    Trap {
        /// Plugin name.
        plugin: String,
        /// What kind of trap.
        kind: TrapKind,
        /// Exported function that was running.
        function: &'static str,
        /// Trap message plus the guest's last stderr line when helpful.
        message: String,
    },
    /// The guest returned an `operator-error`.
    #[error("plugin `{plugin}` returned an error from `{function}`: {error}")]
    Guest {
        /// Plugin name.
        plugin: String,
        /// Exported function that failed.
        function: &'static str,
        /// The guest's error.
        error: GuestError,
    },
    /// The guest returned a batch or selection that breaks the contract.
    #[error("plugin `{plugin}` broke the operator contract in `{function}`: {reason}")]
    Contract {
        /// Plugin name.
        plugin: String,
        /// Exported function whose result was wrong.
        function: &'static str,
        /// What was wrong (row count, buffer length, type...).
        reason: String,
    },
    /// A batch could not be converted to the WIT layout.
    #[error(transparent)]
    Batch(#[from] crate::batch::BatchError),
    /// Reading or writing the compiled-artifact cache failed.
    #[error("compiled-artifact cache at {path}: {source}")]
    Cache {
        /// File or directory involved.
        path: std::path::PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The engine itself could not be configured.
    #[error("engine configuration: {0}")]
    Engine(String),
}

impl Error {
    /// Whether this error killed the instance (a trap or a contract breach).
    pub fn is_trap(&self) -> bool {
        matches!(self, Error::Trap { .. })
    }

    /// The trap kind, when the error is a trap.
    pub fn trap_kind(&self) -> Option<TrapKind> {
        match self {
            Error::Trap { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Stable short name of the error class, for metrics and DLQ headers.
    pub fn kind_str(&self) -> &'static str {
        match self {
            Error::NotWasm { .. } => "not_wasm",
            Error::CoreModule { .. } => "core_module",
            Error::Compile { .. } => "compile",
            Error::UnknownWorld { .. } => "unknown_world",
            Error::WrongKind { .. } => "wrong_kind",
            Error::Link { .. } => "link",
            Error::Instantiate { .. } => "instantiate",
            Error::Trap { kind, .. } => kind.as_str(),
            Error::Guest { error, .. } => error.kind_str(),
            Error::Contract { .. } => "contract",
            Error::Batch(_) => "batch",
            Error::Cache { .. } => "cache",
            Error::Engine(_) => "engine",
        }
    }
}

/// An error value returned by the guest (WIT `operator-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestError {
    /// `invalid-config`.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// `invalid-input`.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// `failed`.
    #[error("failed: {0}")]
    Failed(String),
}

impl GuestError {
    /// Stable short name for metrics and DLQ headers.
    pub fn kind_str(&self) -> &'static str {
        match self {
            GuestError::InvalidConfig(_) => "invalid_config",
            GuestError::InvalidInput(_) => "invalid_input",
            GuestError::Failed(_) => "operator_failed",
        }
    }
}
