//! Logging through the host's `log` import (the host's `tracing`, tagged
//! with the plugin name). Use the macros — `weir_sdk::log::info!("x = {x}")`
//! — or the functions of the same name with a ready-made message.
//! On non-Wasm targets (unit tests) lines go to stderr.

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the operator survived.
    Warn,
    /// A failure.
    Error,
}

/// Writes `message` to the host log at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::host::{self, Level as L};
        let l = match level {
            Level::Trace => L::Trace,
            Level::Debug => L::Debug,
            Level::Info => L::Info,
            Level::Warn => L::Warn,
            Level::Error => L::Error,
        };
        host::log(l, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Logs `message` at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message)
}
/// Logs `message` at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}
/// Logs `message` at info level.
pub fn info(message: &str) {
    log(Level::Info, message)
}
/// Logs `message` at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}
/// Logs `message` at error level.
pub fn error(message: &str) {
    log(Level::Error, message)
}

#[doc(hidden)]
#[macro_export]
macro_rules! __weir_log {
    ($level:ident, $($arg:tt)*) => {
        $crate::log::log($crate::log::Level::$level, &::std::format!($($arg)*))
    };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __weir_log_trace { ($($arg:tt)*) => { $crate::__weir_log!(Trace, $($arg)*) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __weir_log_debug { ($($arg:tt)*) => { $crate::__weir_log!(Debug, $($arg)*) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __weir_log_info { ($($arg:tt)*) => { $crate::__weir_log!(Info, $($arg)*) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __weir_log_warn { ($($arg:tt)*) => { $crate::__weir_log!(Warn, $($arg)*) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __weir_log_error { ($($arg:tt)*) => { $crate::__weir_log!(Error, $($arg)*) }; }

/// `debug!("fmt", args…)`: formats and logs at debug level.
pub use __weir_log_debug as debug;
/// `error!("fmt", args…)`: formats and logs at error level.
pub use __weir_log_error as error;
/// `info!("fmt", args…)`: formats and logs at info level.
pub use __weir_log_info as info;
/// `trace!("fmt", args…)`: formats and logs at trace level.
pub use __weir_log_trace as trace;
/// `warn!("fmt", args…)`: formats and logs at warn level.
pub use __weir_log_warn as warn;
