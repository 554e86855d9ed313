//! Rust SDK for writing **weir** operators as WebAssembly components.
//!
//! An operator is a type implementing one of [`Filter`], [`Map`],
//! [`Aggregate`] or [`Sink`], exported with the matching macro
//! ([`export_filter!`], [`export_map!`], [`export_aggregate!`],
//! [`export_sink!`]). Batches arrive as a [`Batch`] of typed [`Column`]
//! views over Arrow buffers; whole numeric columns are read without
//! per-value conversion ([`Column::f64_values`]) and new columns are made
//! with the builders in [`column`](mod@column).
//!
//! ```ignore
//! use weir_sdk::{Batch, Error, Filter, Selection};
//!
//! struct Positive;
//! impl Filter for Positive {
//!     type Config = serde_json::Value;
//!     fn init(_: Self::Config) -> Result<Self, Error> { Ok(Positive) }
//!     fn evaluate(&mut self, batch: &Batch) -> Result<Selection, Error> {
//!         let col = batch.column("x")?;
//!         Ok(Selection::from_values(&col.f64_values()?, |v| *v > 0.0).and_validity(col.validity()))
//!     }
//! }
//! weir_sdk::export_filter!(Positive);
//! ```
//!
//! Everything except [`bindings`] compiles on the native target too, so
//! operator logic can be unit-tested with plain `cargo test`.

#![warn(missing_docs)]

extern crate self as weir_sdk;

pub mod batch;
pub mod bindings;
pub mod column;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod log;
pub mod operator;
pub mod selection;
pub mod sketch;
pub mod state;
pub mod window;

#[doc(hidden)]
pub mod __private;

pub use batch::{Batch, DataType, Field, TimeUnit};
pub use column::{BinaryBuilder, Column, ListUtf8Builder, Primitive, StringBuilder};
pub use error::Error;
pub use operator::{Aggregate, Filter, Map, MapOutput, RowRejection, Sink, SinkError};
pub use selection::Selection;

/// A `Config` type for operators without configuration: accepts and
/// ignores any JSON.
pub type NoConfig = serde::de::IgnoredAny;

#[cfg(test)]
mod tests;
