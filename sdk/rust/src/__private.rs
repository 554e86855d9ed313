//! Glue between the generated bindings and the operator traits; used by the
//! `export_*!` macros. Not part of the public API.

use std::cell::RefCell;
use std::thread::LocalKey;

use serde::de::DeserializeOwned;

pub use wit_bindgen;

use crate::Error;

/// Per-instance operator state, created by `init`.
pub type State<T> = LocalKey<RefCell<Option<T>>>;

mod glue {
    use super::*;
    use crate::bindings::types as wit;
    use crate::column::ListItems;
    use crate::{
        Aggregate, Batch, Column, DataType, Field, Filter, Map, RowRejection, Sink, SinkError,
        TimeUnit, state::StateEntry,
    };

    type WitResult<T> = Result<T, wit::OperatorError>;

    fn to_wit(e: Error) -> wit::OperatorError {
        match e {
            Error::InvalidConfig(m) => wit::OperatorError::InvalidConfig(m),
            Error::InvalidInput(m) => wit::OperatorError::InvalidInput(m),
            Error::Failed(m) => wit::OperatorError::Failed(m),
        }
    }

    fn dt_from_wit(d: wit::DataType) -> DataType {
        match d {
            wit::DataType::Boolean => DataType::Boolean,
            wit::DataType::Int32 => DataType::Int32,
            wit::DataType::Int64 => DataType::Int64,
            wit::DataType::Float32 => DataType::Float32,
            wit::DataType::Float64 => DataType::Float64,
            wit::DataType::Utf8 => DataType::Utf8,
            wit::DataType::Binary => DataType::Binary,
            wit::DataType::ListUtf8 => DataType::ListUtf8,
            wit::DataType::Timestamp(t) => DataType::Timestamp {
                unit: match t.unit {
                    wit::TimeUnit::Second => TimeUnit::Second,
                    wit::TimeUnit::Millisecond => TimeUnit::Millisecond,
                    wit::TimeUnit::Microsecond => TimeUnit::Microsecond,
                    wit::TimeUnit::Nanosecond => TimeUnit::Nanosecond,
                },
                timezone: t.timezone,
            },
        }
    }

    fn dt_to_wit(d: DataType) -> wit::DataType {
        match d {
            DataType::Boolean => wit::DataType::Boolean,
            DataType::Int32 => wit::DataType::Int32,
            DataType::Int64 => wit::DataType::Int64,
            DataType::Float32 => wit::DataType::Float32,
            DataType::Float64 => wit::DataType::Float64,
            DataType::Utf8 => wit::DataType::Utf8,
            DataType::Binary => wit::DataType::Binary,
            DataType::ListUtf8 => wit::DataType::ListUtf8,
            DataType::Timestamp { unit, timezone } => {
                wit::DataType::Timestamp(wit::TimestampType {
                    unit: match unit {
                        TimeUnit::Second => wit::TimeUnit::Second,
                        TimeUnit::Millisecond => wit::TimeUnit::Millisecond,
                        TimeUnit::Microsecond => wit::TimeUnit::Microsecond,
                        TimeUnit::Nanosecond => wit::TimeUnit::Nanosecond,
                    },
                    timezone,
                })
            }
        }
    }

    /// Moves the host's buffers into an SDK batch (no copy).
    fn batch_from_wit(b: wit::Batch) -> WitResult<Batch> {
        if b.schema.len() != b.columns.len() {
            return Err(wit::OperatorError::InvalidInput(format!(
                "batch has {} fields but {} columns",
                b.schema.len(),
                b.columns.len()
            )));
        }
        let n = b.num_rows as usize;
        let mut fields = Vec::with_capacity(b.schema.len());
        let mut columns = Vec::with_capacity(b.columns.len());
        for (f, c) in b.schema.into_iter().zip(b.columns) {
            let dt = dt_from_wit(f.data_type);
            let items = c.items.map(|i| ListItems {
                validity: i.validity,
                offsets: i.offsets,
                values: i.values,
            });
            columns.push(Column::from_raw_parts_unchecked(
                dt.clone(),
                n,
                c.validity,
                c.offsets,
                c.values,
                items,
            ));
            fields.push(Field {
                name: f.name,
                data_type: dt,
                nullable: f.nullable,
            });
        }
        Ok(Batch::new_unchecked(fields, columns, n))
    }

    thread_local! {
        /// Schemas the host declared (contract 0.1.2); a handle is an index.
        static SCHEMAS: RefCell<Vec<std::sync::Arc<Vec<Field>>>> = const { RefCell::new(Vec::new()) };
    }

    /// `declare-schema` of `filter-packed` / `map-packed`: keeps the schema,
    /// returns its handle.
    pub fn declare_schema(schema: Vec<wit::Field>) -> u32 {
        let fields: Vec<Field> = schema
            .into_iter()
            .map(|f| Field { name: f.name, data_type: dt_from_wit(f.data_type), nullable: f.nullable })
            .collect();
        SCHEMAS.with(|schemas| {
            let mut schemas = schemas.borrow_mut();
            schemas.push(std::sync::Arc::new(fields));
            (schemas.len() - 1) as u32
        })
    }

    /// Builds an SDK batch from a packed batch: the declared schema (shared,
    /// not copied) and each column's buffers copied out of the one list
    /// (the host packs small batches only).
    fn batch_from_packed(p: wit::PackedBatch) -> WitResult<Batch> {
        let invalid = |what: &str| wit::OperatorError::InvalidInput(format!("packed batch: {what}"));
        let fields = SCHEMAS
            .with(|schemas| schemas.borrow().get(p.schema as usize).cloned())
            .ok_or_else(|| invalid(&format!("schema handle {} was never declared", p.schema)))?;
        let n = p.num_rows as usize;
        let mut slots = p.layout.chunks_exact(2);
        let mut take = || -> WitResult<Vec<u8>> {
            let slot = slots.next().ok_or_else(|| invalid("layout too short for the schema"))?;
            let (start, len) = (slot[0] as usize, slot[1] as usize);
            p.buffers
                .get(start..start.saturating_add(len))
                .map(<[u8]>::to_vec)
                .ok_or_else(|| invalid("a buffer lies outside the list"))
        };
        let some = |v: Vec<u8>| (!v.is_empty()).then_some(v);
        let mut columns = Vec::with_capacity(fields.len());
        for f in fields.iter() {
            let (validity, offsets, values) = (some(take()?), take()?, take()?);
            let items = match f.data_type {
                DataType::ListUtf8 => Some(ListItems { validity: some(take()?), offsets: take()?, values: take()? }),
                _ => None,
            };
            columns.push(Column::from_raw_parts_unchecked(f.data_type.clone(), n, validity, offsets, values, items));
        }
        Ok(Batch::shared_unchecked(fields, columns, n))
    }

    /// Moves an SDK batch's buffers into the WIT record (no copy).
    fn batch_to_wit(b: Batch) -> wit::Batch {
        let (fields, columns, n) = b.into_parts();
        wit::Batch {
            schema: fields
                .into_iter()
                .map(|f| wit::Field {
                    name: f.name,
                    data_type: dt_to_wit(f.data_type),
                    nullable: f.nullable,
                })
                .collect(),
            columns: columns
                .into_iter()
                .map(|c| {
                    let (_, _, validity, offsets, values, items) = c.into_raw_parts();
                    wit::Column {
                        validity,
                        offsets,
                        values,
                        items: items.map(|i| wit::ListItems {
                            validity: i.validity,
                            offsets: i.offsets,
                            values: i.values,
                        }),
                    }
                })
                .collect(),
            num_rows: n as u32,
        }
    }

    fn rejections(r: Vec<RowRejection>) -> Vec<wit::RowRejection> {
        r.into_iter()
            .map(|r| wit::RowRejection {
                row: r.row,
                reason: r.reason,
            })
            .collect()
    }

    fn init<T: 'static, C: DeserializeOwned>(
        state: &'static State<T>,
        config: &str,
        make: impl FnOnce(C) -> Result<T, Error>,
        reads: impl FnOnce(&T) -> Option<Vec<String>>,
    ) -> WitResult<wit::OperatorInfo> {
        let inst = parse_config(config).and_then(make).map_err(to_wit)?;
        let info = wit::OperatorInfo {
            reads: reads(&inst),
        };
        state.with(|s| *s.borrow_mut() = Some(inst));
        Ok(info)
    }

    pub fn filter_init<T: Filter>(
        state: &'static State<T>,
        config: String,
    ) -> WitResult<wit::OperatorInfo> {
        init(state, &config, T::init, T::reads)
    }
    pub fn filter_evaluate<T: Filter>(
        state: &'static State<T>,
        input: wit::Batch,
    ) -> WitResult<Vec<u8>> {
        evaluate(state, batch_from_wit(input)?)
    }
    pub fn filter_evaluate_packed<T: Filter>(
        state: &'static State<T>,
        input: wit::PackedBatch,
    ) -> WitResult<Vec<u8>> {
        evaluate(state, batch_from_packed(input)?)
    }
    fn evaluate<T: Filter>(state: &'static State<T>, batch: Batch) -> WitResult<Vec<u8>> {
        with_instance(state, |t| t.evaluate(&batch))
            .map(|s| s.into_bytes())
            .map_err(to_wit)
    }

    pub fn map_init<T: Map>(
        state: &'static State<T>,
        config: String,
    ) -> WitResult<wit::OperatorInfo> {
        init(state, &config, T::init, T::reads)
    }
    pub fn map_process<T: Map>(
        state: &'static State<T>,
        input: wit::Batch,
    ) -> WitResult<crate::bindings::map::weir::operator::map_types::MapOutput> {
        process(state, batch_from_wit(input)?)
    }
    pub fn map_process_packed<T: Map>(
        state: &'static State<T>,
        input: wit::PackedBatch,
    ) -> WitResult<crate::bindings::map::weir::operator::map_types::MapOutput> {
        process(state, batch_from_packed(input)?)
    }
    fn process<T: Map>(
        state: &'static State<T>,
        batch: Batch,
    ) -> WitResult<crate::bindings::map::weir::operator::map_types::MapOutput> {
        let out = with_instance(state, |t| t.process(batch)).map_err(to_wit)?;
        Ok(crate::bindings::map::weir::operator::map_types::MapOutput {
            output: batch_to_wit(out.batch),
            rejected: rejections(out.rejected),
        })
    }

    pub fn aggregate_init<T: Aggregate>(
        state: &'static State<T>,
        config: String,
    ) -> WitResult<wit::OperatorInfo> {
        init(state, &config, T::init, T::reads)
    }
    pub fn aggregate_process<T: Aggregate>(
        state: &'static State<T>,
        input: wit::Batch,
        watermark: Option<i64>,
    ) -> WitResult<Vec<wit::Batch>> {
        let batch = batch_from_wit(input)?;
        let out = with_instance(state, |t| t.process(&batch, watermark)).map_err(to_wit)?;
        Ok(out.into_iter().map(batch_to_wit).collect())
    }
    pub fn aggregate_snapshot<T: Aggregate>(state: &'static State<T>) -> WitResult<Vec<u8>> {
        with_instance(state, |t| t.snapshot()).map_err(to_wit)
    }
    pub fn aggregate_restore<T: Aggregate>(
        state: &'static State<T>,
        bytes: Vec<u8>,
    ) -> WitResult<()> {
        with_instance(state, |t| t.restore(&bytes)).map_err(to_wit)
    }

    type WitEntry = crate::bindings::aggregate::exports::weir::operator::keyed_state::StateEntry;

    fn entries_to_wit(entries: Vec<StateEntry>) -> Vec<WitEntry> {
        entries.into_iter().map(|StateEntry { key, value }| WitEntry { key, value }).collect()
    }

    /// The whole snapshot as the one entry of an aggregate without keyed state.
    fn whole<T: Aggregate>(t: &mut T) -> Result<Vec<StateEntry>, Error> {
        Ok(vec![StateEntry { key: Vec::new(), value: Some(t.snapshot()?) }])
    }

    pub fn aggregate_snapshot_changes<T: Aggregate>(state: &'static State<T>) -> WitResult<Vec<WitEntry>> {
        with_instance(state, |t| match t.keyed_state() {
            Some(keyed) => keyed.changes(),
            None => whole(t),
        })
        .map(entries_to_wit)
        .map_err(to_wit)
    }
    pub fn aggregate_snapshot_entries<T: Aggregate>(state: &'static State<T>) -> WitResult<Vec<WitEntry>> {
        with_instance(state, |t| match t.keyed_state() {
            Some(keyed) => keyed.entries(),
            None => whole(t),
        })
        .map(entries_to_wit)
        .map_err(to_wit)
    }
    pub fn aggregate_restore_entries<T: Aggregate>(
        state: &'static State<T>,
        entries: Vec<WitEntry>,
    ) -> WitResult<()> {
        let entries: Vec<StateEntry> = entries.into_iter().map(|WitEntry { key, value }| StateEntry { key, value }).collect();
        with_instance(state, |t| match t.keyed_state() {
            Some(keyed) => keyed.restore_entries(entries),
            None => match entries.into_iter().find(|e| e.key.is_empty()).and_then(|e| e.value) {
                Some(snapshot) => t.restore(&snapshot),
                None => Ok(()),
            },
        })
        .map_err(to_wit)
    }

    pub fn sink_init<T: Sink>(
        state: &'static State<T>,
        config: String,
    ) -> WitResult<wit::OperatorInfo> {
        init(state, &config, T::init, T::reads)
    }
    pub fn sink_write<T: Sink>(
        state: &'static State<T>,
        input: wit::Batch,
    ) -> Result<(), crate::bindings::sink::weir::operator::sink_types::SinkError> {
        use crate::bindings::sink::weir::operator::sink_types::SinkError as W;
        let res = match batch_from_wit(input) {
            Ok(batch) => state.with(|s| match s.borrow_mut().as_mut() {
                Some(t) => t.write(&batch),
                None => Err(SinkError::Permanent(NOT_INIT.into())),
            }),
            Err(e) => Err(SinkError::Permanent(format!("{e:?}"))),
        };
        res.map_err(|e| match e {
            SinkError::Retryable(m) => W::Retryable(m),
            SinkError::Permanent(m) => W::Permanent(m),
            SinkError::RejectedRows(r) => W::RejectedRows(rejections(r)),
        })
    }
}

pub use glue::*;

const NOT_INIT: &str = "operator called before init";

/// Runs `f` on the instance, or fails if `init` has not run.
pub fn with_instance<T: 'static, R>(
    state: &'static State<T>,
    f: impl FnOnce(&mut T) -> Result<R, Error>,
) -> Result<R, Error> {
    state.with(|s| match s.borrow_mut().as_mut() {
        Some(t) => f(t),
        None => Err(Error::failed(NOT_INIT)),
    })
}

/// Parses a JSON config (empty string = `{}`); errors are `InvalidConfig`.
pub fn parse_config<C: DeserializeOwned>(config: &str) -> Result<C, Error> {
    let config = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    serde_json::from_str(config).map_err(|e| Error::invalid_config(e.to_string()))
}

/// Exports a [`Filter`](crate::Filter) implementation as the component's
/// `weir:operator/filter` interface: `weir_sdk::export_filter!(MyFilter);`
#[macro_export]
macro_rules! export_filter {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static __WEIR_STATE: ::core::cell::RefCell<::core::option::Option<$ty>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }
            struct __WeirExport;
            impl $crate::bindings::filter::exports::weir::operator::filter::Guest for __WeirExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<
                    $crate::bindings::types::OperatorInfo,
                    $crate::bindings::types::OperatorError,
                > {
                    $crate::__private::filter_init::<$ty>(&__WEIR_STATE, config)
        }
                fn evaluate(
                    input: $crate::bindings::types::Batch,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<u8>,
                    $crate::bindings::types::OperatorError,
                > {
                    $crate::__private::filter_evaluate::<$ty>(&__WEIR_STATE, input)
                }
            }
            impl $crate::bindings::filter::exports::weir::operator::filter_packed::Guest for __WeirExport {
                fn declare_schema(schema: ::std::vec::Vec<$crate::bindings::types::Field>) -> u32 {
                    $crate::__private::declare_schema(schema)
                }
                fn evaluate_packed(
                    input: $crate::bindings::types::PackedBatch,
                ) -> ::core::result::Result<::std::vec::Vec<u8>, $crate::bindings::types::OperatorError> {
                    $crate::__private::filter_evaluate_packed::<$ty>(&__WEIR_STATE, input)
                }
            }
            $crate::bindings::filter::export!(__WeirExport with_types_in $crate::bindings::filter);
        };
    };
}

/// Exports a [`Map`](crate::Map) implementation as the component's
/// `weir:operator/map` interface: `weir_sdk::export_map!(MyMap);`
#[macro_export]
macro_rules! export_map {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static __WEIR_STATE: ::core::cell::RefCell<::core::option::Option<$ty>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }
            struct __WeirExport;
            impl $crate::bindings::map::exports::weir::operator::map::Guest for __WeirExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<
                    $crate::bindings::types::OperatorInfo,
                    $crate::bindings::types::OperatorError,
                > {
                    $crate::__private::map_init::<$ty>(&__WEIR_STATE, config)
        }
                fn process(
                    input: $crate::bindings::types::Batch,
                ) -> ::core::result::Result<
                    $crate::bindings::map::weir::operator::map_types::MapOutput,
                    $crate::bindings::types::OperatorError,
                > {
                    $crate::__private::map_process::<$ty>(&__WEIR_STATE, input)
                }
            }
            impl $crate::bindings::map::exports::weir::operator::map_packed::Guest for __WeirExport {
                fn declare_schema(schema: ::std::vec::Vec<$crate::bindings::types::Field>) -> u32 {
                    $crate::__private::declare_schema(schema)
                }
                fn process_packed(
                    input: $crate::bindings::types::PackedBatch,
                ) -> ::core::result::Result<
                    $crate::bindings::map::weir::operator::map_types::MapOutput,
                    $crate::bindings::types::OperatorError,
                > {
                    $crate::__private::map_process_packed::<$ty>(&__WEIR_STATE, input)
                }
            }
            $crate::bindings::map::export!(__WeirExport with_types_in $crate::bindings::map);
        };
    };
}

/// Exports an [`Aggregate`](crate::Aggregate) implementation as the
/// component's `weir:operator/aggregate` and `weir:operator/keyed-state`
/// interfaces (the `keyed-aggregate-operator` world, contract 0.1.1):
/// `weir_sdk::export_aggregate!(MyAggregate);`. Checkpoints are incremental
/// when [`Aggregate::keyed_state`](crate::Aggregate::keyed_state) returns the
/// state; otherwise the whole snapshot is the one entry.
#[macro_export]
macro_rules! export_aggregate {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static __WEIR_STATE: ::core::cell::RefCell<::core::option::Option<$ty>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }
            struct __WeirExport;
            impl $crate::bindings::aggregate::exports::weir::operator::aggregate::Guest for __WeirExport {
                fn init(config: ::std::string::String) -> ::core::result::Result<$crate::bindings::types::OperatorInfo, $crate::bindings::types::OperatorError> {
                    $crate::__private::aggregate_init::<$ty>(&__WEIR_STATE, config)
                }
                fn process(input: $crate::bindings::types::Batch, watermark: ::core::option::Option<i64>) -> ::core::result::Result<::std::vec::Vec<$crate::bindings::types::Batch>, $crate::bindings::types::OperatorError> {
                    $crate::__private::aggregate_process::<$ty>(&__WEIR_STATE, input, watermark)
                }
                fn snapshot() -> ::core::result::Result<::std::vec::Vec<u8>, $crate::bindings::types::OperatorError> {
                    $crate::__private::aggregate_snapshot::<$ty>(&__WEIR_STATE)
                }
                fn restore(state: ::std::vec::Vec<u8>) -> ::core::result::Result<(), $crate::bindings::types::OperatorError> {
                    $crate::__private::aggregate_restore::<$ty>(&__WEIR_STATE, state)
                }
            }
            impl $crate::bindings::aggregate::exports::weir::operator::keyed_state::Guest for __WeirExport {
                fn snapshot_changes() -> ::core::result::Result<::std::vec::Vec<$crate::bindings::aggregate::exports::weir::operator::keyed_state::StateEntry>, $crate::bindings::types::OperatorError> {
                    $crate::__private::aggregate_snapshot_changes::<$ty>(&__WEIR_STATE)
                }
                fn snapshot_entries() -> ::core::result::Result<::std::vec::Vec<$crate::bindings::aggregate::exports::weir::operator::keyed_state::StateEntry>, $crate::bindings::types::OperatorError> {
                    $crate::__private::aggregate_snapshot_entries::<$ty>(&__WEIR_STATE)
                }
                fn restore_entries(entries: ::std::vec::Vec<$crate::bindings::aggregate::exports::weir::operator::keyed_state::StateEntry>) -> ::core::result::Result<(), $crate::bindings::types::OperatorError> {
                    $crate::__private::aggregate_restore_entries::<$ty>(&__WEIR_STATE, entries)
                }
            }
            $crate::bindings::aggregate::export!(__WeirExport with_types_in $crate::bindings::aggregate);
        };
    };
}

/// Exports a [`Sink`](crate::Sink) implementation as the component's
/// `weir:operator/sink` interface: `weir_sdk::export_sink!(MySink);`
#[macro_export]
macro_rules! export_sink {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static __WEIR_STATE: ::core::cell::RefCell<::core::option::Option<$ty>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }
            struct __WeirExport;
            impl $crate::bindings::sink::exports::weir::operator::sink::Guest for __WeirExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<
                    $crate::bindings::types::OperatorInfo,
                    $crate::bindings::types::OperatorError,
                > {
                    $crate::__private::sink_init::<$ty>(&__WEIR_STATE, config)
        }
                fn write(
                    input: $crate::bindings::types::Batch,
                ) -> ::core::result::Result<
                    (),
                    $crate::bindings::sink::weir::operator::sink_types::SinkError,
                > {
                    $crate::__private::sink_write::<$ty>(&__WEIR_STATE, input)
                }
            }
            $crate::bindings::sink::export!(__WeirExport with_types_in $crate::bindings::sink);
        };
    };
}
