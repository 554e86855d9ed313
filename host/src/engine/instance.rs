//! A live operator instance and its calls. Every call arms the deadline and
//! fuel, and turns failures into the two layers of [`Error`]: a trap (the
//! instance must be discarded) or the guest's own `operator-error`.

use super::error::{Error, GuestError, OperatorKind, Result, TrapKind};
use super::plugin::Plugin;
use super::store::{DeadlineExceeded, StoreState, arm_call, run_bounded};
use crate::batch::{GuestBatch, batch_from_guest, guest_batch_bytes, selection_to_mask};
use crate::bindings::exports::weir::operator as exports;
use crate::bindings::weir::operator::types as wit;
use crate::bindings::{StateEntry, StateEntryParam};
use arrow_array::{BooleanArray, RecordBatch};
use wasmtime::Store;

pub(super) enum Guest {
    /// With its packed-batch exports when the component has them (0.1.2).
    Filter(exports::filter::Guest, Option<exports::filter_packed::Guest>),
    /// With its packed-batch exports when the component has them (0.1.2).
    Map(exports::map::Guest, Option<exports::map_packed::Guest>),
    /// With `keyed-state` when the component exports it.
    Aggregate(exports::aggregate::Guest, Option<exports::keyed_state::Guest>),
    Sink(exports::sink::Guest),
}

/// Distinct schemas declared to one instance at most; batches of further
/// schemas go unpacked, so a stream of changing schemas cannot grow the
/// guest's table without bound.
const MAX_DECLARED_SCHEMAS: usize = 32;

/// The host side of packed batches for one instance: the schemas declared
/// to it (with the guest's handles) and buffers reused from call to call.
#[derive(Default)]
struct Packing {
    declared: Vec<(Vec<arrow_schema::FieldRef>, u32)>,
    buffers: Vec<u8>,
    layout: Vec<u32>,
}

/// A row an operator rejected, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRejection {
    /// Row index in the batch given to the operator.
    pub row: u32,
    /// The operator's reason.
    pub reason: String,
}

/// One key of a keyed aggregate's state: its new value, or none when removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The operator's key bytes.
    pub key: Vec<u8>,
    /// The serialised state of the key; none = removed.
    pub value: Option<Vec<u8>>,
}

/// What a map call returned (before the host removes rejected rows).
#[derive(Debug)]
pub struct MapResult {
    /// Output batch, same row count as the input.
    pub batch: RecordBatch,
    /// Rows to dead-letter.
    pub rejected: Vec<RowRejection>,
}

/// What a sink call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkResult {
    /// Every row was accepted.
    Written,
    /// Temporary failure; retry the batch later.
    Retryable(String),
    /// The batch can never be written.
    Permanent(String),
    /// Every row but these was written.
    RejectedRows(Vec<RowRejection>),
}

/// Whether a call failed because Wasmtime's copy budget for one lift (the
/// hostcall fuel set from [`SandboxLimits::max_copied_bytes_per_call`]) ran
/// out. Wasmtime's error type for it is private; its message is stable.
///
/// [`SandboxLimits::max_copied_bytes_per_call`]: super::limits::SandboxLimits::max_copied_bytes_per_call
fn is_copy_budget_exhausted(error: &wasmtime::Error) -> bool {
    error.chain().any(|cause| cause.to_string().contains("fuel allocated for hostcalls has been exhausted"))
}

/// One sandboxed instance of a plugin, initialised with its config.
pub struct Instance {
    plugin: Plugin,
    store: Store<StoreState>,
    guest: Guest,
    reads: Option<Vec<String>>,
    packing: Packing,
}

impl Instance {
    pub(super) fn init(plugin: Plugin, store: Store<StoreState>, guest: Guest, config: &str) -> Result<Instance> {
        let mut instance = Instance { plugin, store, guest, reads: None, packing: Packing::default() };
        let info = instance.call("init", async |store, guest| match guest {
            Guest::Filter(g, _) => g.call_init(store, config).await,
            Guest::Map(g, _) => g.call_init(store, config).await,
            Guest::Aggregate(g, _) => g.call_init(store, config).await,
            Guest::Sink(g) => g.call_init(store, config).await,
        })?;
        let info = instance.guest_result("init", info)?;
        instance.reads = info.reads;
        Ok(instance)
    }

    /// The plugin this instance runs.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Columns the operator said it reads (none = all).
    pub fn reads(&self) -> Option<&[String]> {
        self.reads.as_deref()
    }

    /// Largest linear memory the instance has had, in bytes.
    pub fn peak_memory_bytes(&self) -> usize {
        self.store.data().limiter.peak_bytes
    }

    /// Prepares `batch` for this instance (only the columns it reads).
    pub fn prepare(&self, batch: &RecordBatch) -> Result<GuestBatch> {
        Ok(GuestBatch::new(batch, self.reads())?)
    }

    /// The handle under which `batch`'s schema is declared to the guest, when
    /// the batch goes packed (the component takes packed batches and the
    /// batch is small); declares the schema on first use.
    fn packed_schema(&mut self, batch: &GuestBatch) -> Result<Option<u32>> {
        let packed = matches!(self.guest, Guest::Filter(_, Some(_)) | Guest::Map(_, Some(_)));
        // Packing copies the buffers once more on the host, which costs less
        // than the lists it saves only while they are small (BENCHMARKS.md,
        // "Per-call overhead").
        if !packed || batch.buffer_bytes() as u64 > self.plugin.limits().packed_batch_max_bytes {
            return Ok(None);
        }
        if let Some((_, handle)) = self.packing.declared.iter().find(|(fields, _)| fields.as_slice() == batch.fields()) {
            return Ok(Some(*handle));
        }
        if self.packing.declared.len() >= MAX_DECLARED_SCHEMAS {
            return Ok(None);
        }
        let schema = batch.wit_schema();
        let handle = self.call("declare-schema", async |store, guest| match guest {
            Guest::Filter(_, Some(p)) => p.call_declare_schema(store, &schema).await,
            Guest::Map(_, Some(p)) => p.call_declare_schema(store, &schema).await,
            _ => unreachable!("packed exports checked"),
        })?;
        self.packing.declared.push((batch.fields().to_vec(), handle));
        Ok(Some(handle))
    }

    /// Calls `function` with `batch`: packed through `packed` when the
    /// component takes packed batches and the batch is small (the schema
    /// declared first if new, the reused buffers lent to the call), else
    /// column by column through `plain`.
    fn call_with_batch<R>(
        &mut self,
        function: &'static str,
        batch: &GuestBatch,
        packed: impl AsyncFnOnce(&mut Store<StoreState>, &Guest, wit::PackedBatch<'_>) -> wasmtime::Result<R>,
        plain: impl AsyncFnOnce(&mut Store<StoreState>, &Guest, wit::BatchParam<'_>) -> wasmtime::Result<R>,
    ) -> Result<R> {
        let Some(handle) = self.packed_schema(batch)? else {
            return batch.with_wit(|input| self.call(function, async |store, guest| plain(store, guest, input).await));
        };
        let (mut buffers, mut layout) = (std::mem::take(&mut self.packing.buffers), std::mem::take(&mut self.packing.layout));
        batch.pack(&mut buffers, &mut layout);
        let input = wit::PackedBatch { schema: handle, num_rows: batch.num_rows() as u32, buffers: &buffers, layout: &layout };
        let result = self.call(function, async |store, guest| packed(store, guest, input).await);
        (self.packing.buffers, self.packing.layout) = (buffers, layout);
        result
    }

    /// Filter: returns the keep-mask for the batch.
    pub fn evaluate(&mut self, batch: &GuestBatch) -> Result<BooleanArray> {
        self.expect(OperatorKind::Filter)?;
        let result = self.call_with_batch(
            "evaluate",
            batch,
            async |store, guest, input| match guest {
                Guest::Filter(_, Some(p)) => p.call_evaluate_packed(store, input).await,
                _ => unreachable!("packed exports checked"),
            },
            async |store, guest, input| match guest {
                Guest::Filter(g, _) => g.call_evaluate(store, input).await,
                _ => unreachable!("kind checked"),
            },
        )?;
        let selection = self.guest_result("evaluate", result)?;
        selection_to_mask(selection, batch.num_rows()).map_err(|reason| self.contract("evaluate", reason))
    }

    /// Map: returns the output batch (same row count) and rejected rows.
    pub fn process_map(&mut self, batch: &GuestBatch) -> Result<MapResult> {
        self.expect(OperatorKind::Map)?;
        let result = self.call_with_batch(
            "process",
            batch,
            async |store, guest, input| match guest {
                Guest::Map(_, Some(p)) => p.call_process_packed(store, input).await,
                _ => unreachable!("packed exports checked"),
            },
            async |store, guest, input| match guest {
                Guest::Map(g, _) => g.call_process(store, input).await,
                _ => unreachable!("kind checked"),
            },
        )?;
        let output = self.guest_result("process", result)?;
        let out_rows = output.output.num_rows as usize;
        if out_rows != batch.num_rows() {
            return Err(self.contract(
                "process",
                format!("map returned {out_rows} rows for an input of {} rows", batch.num_rows()),
            ));
        }
        self.check_output_bytes("process", std::slice::from_ref(&output.output))?;
        let out = batch_from_guest(output.output).map_err(|e| self.contract("process", e.to_string()))?;
        let rejected = self.rejections("process", output.rejected, out_rows)?;
        Ok(MapResult { batch: out, rejected })
    }

    /// Aggregate: folds the batch in, returns zero or more result batches.
    pub fn process_aggregate(&mut self, batch: &GuestBatch, watermark_ms: Option<i64>) -> Result<Vec<RecordBatch>> {
        self.expect(OperatorKind::Aggregate)?;
        let result = batch.with_wit(|wit_batch| {
            self.call("process", async |store, guest| match guest {
                Guest::Aggregate(g, _) => g.call_process(store, wit_batch, watermark_ms).await,
                _ => unreachable!("kind checked"),
            })
        })?;
        let batches = self.guest_result("process", result)?;
        // Validated before anything is allocated per row: a batch without
        // columns may claim any row count.
        let rows: u64 = batches.iter().map(|b| u64::from(b.num_rows)).sum();
        let max_rows = self.plugin.limits().max_output_rows_per_call;
        if rows > max_rows {
            return Err(self.contract(
                "process",
                format!("aggregate returned {rows} rows in one call; the limit is {max_rows} (engine.limits.max_output_rows_per_call)"),
            ));
        }
        self.check_output_bytes("process", &batches)?;
        batches
            .into_iter()
            .map(|b| batch_from_guest(b).map_err(|e| self.contract("process", e.to_string())))
            .collect()
    }

    /// Aggregate: serialises the operator's state.
    pub fn snapshot(&mut self) -> Result<Vec<u8>> {
        self.expect(OperatorKind::Aggregate)?;
        let result = self.call("snapshot", async |store, guest| match guest {
            Guest::Aggregate(g, _) => g.call_snapshot(store).await,
            _ => unreachable!("kind checked"),
        })?;
        self.guest_result("snapshot", result)
    }

    /// Aggregate: replaces the operator's state with a snapshot.
    pub fn restore(&mut self, state: &[u8]) -> Result<()> {
        self.expect(OperatorKind::Aggregate)?;
        let result = self.call("restore", async |store, guest| match guest {
            Guest::Aggregate(g, _) => g.call_restore(store, state).await,
            _ => unreachable!("kind checked"),
        })?;
        self.guest_result("restore", result)
    }

    /// Keyed aggregate: every entry of the state (see [`Instance::snapshot_changes`]).
    pub fn snapshot_entries(&mut self) -> Result<Vec<StateChange>> {
        self.keyed_call("snapshot-entries", false)
    }

    /// Keyed aggregate: the entries changed or removed since the last
    /// `snapshot-entries`, `snapshot-changes` or `restore-entries`.
    pub fn snapshot_changes(&mut self) -> Result<Vec<StateChange>> {
        self.keyed_call("snapshot-changes", true)
    }

    fn keyed_call(&mut self, function: &'static str, changes: bool) -> Result<Vec<StateChange>> {
        self.expect_keyed(function)?;
        let result = self.call(function, async |store, guest| match guest {
            Guest::Aggregate(_, Some(k)) if changes => k.call_snapshot_changes(store).await,
            Guest::Aggregate(_, Some(k)) => k.call_snapshot_entries(store).await,
            _ => unreachable!("keyed state checked"),
        })?;
        let entries = self.guest_result(function, result)?;
        if !changes && let Some(entry) = entries.iter().find(|e| e.value.is_none()) {
            return Err(self.contract(function, format!("entry of {} key bytes has no value (snapshot-entries returns present entries only)", entry.key.len())));
        }
        Ok(entries.into_iter().map(|StateEntry { key, value }| StateChange { key, value }).collect())
    }

    /// Keyed aggregate: replaces the state with `entries` (key, value).
    pub fn restore_entries(&mut self, entries: &[(&[u8], &[u8])]) -> Result<()> {
        self.expect_keyed("restore-entries")?;
        let entries: Vec<StateEntryParam<'_>> = entries.iter().map(|&(key, value)| StateEntryParam { key, value: Some(value) }).collect();
        let result = self.call("restore-entries", async |store, guest| match guest {
            Guest::Aggregate(_, Some(k)) => k.call_restore_entries(store, &entries).await,
            _ => unreachable!("keyed state checked"),
        })?;
        self.guest_result("restore-entries", result)
    }

    fn expect_keyed(&self, function: &'static str) -> Result<()> {
        self.expect(OperatorKind::Aggregate)?;
        if matches!(self.guest, Guest::Aggregate(_, Some(_))) {
            Ok(())
        } else {
            Err(self.contract(function, "the component does not export weir:operator/keyed-state".to_owned()))
        }
    }

    /// Sink: writes the batch.
    pub fn write(&mut self, batch: &GuestBatch) -> Result<SinkResult> {
        self.expect(OperatorKind::Sink)?;
        let result = batch.with_wit(|wit_batch| {
            self.call("write", async |store, guest| match guest {
                Guest::Sink(g) => g.call_write(store, wit_batch).await,
                _ => unreachable!("kind checked"),
            })
        })?;
        use crate::bindings::weir::operator::sink_types::SinkError;
        Ok(match result {
            Ok(()) => SinkResult::Written,
            Err(SinkError::Retryable(reason)) => SinkResult::Retryable(reason),
            Err(SinkError::Permanent(reason)) => SinkResult::Permanent(reason),
            Err(SinkError::RejectedRows(rows)) => {
                SinkResult::RejectedRows(self.rejections("write", rows, batch.num_rows())?)
            }
        })
    }

    fn expect(&self, kind: OperatorKind) -> Result<()> {
        self.plugin.expect_kind(kind)
    }

    fn contract(&self, function: &'static str, reason: String) -> Error {
        Error::Contract { plugin: self.plugin.name().to_owned(), function, reason }
    }

    /// Refuses returned batches whose buffers together exceed the per-call limit.
    fn check_output_bytes(&self, function: &'static str, batches: &[wit::BatchResult]) -> Result<()> {
        let bytes: u64 = batches.iter().map(guest_batch_bytes).sum();
        let max_bytes = self.plugin.limits().max_output_bytes_per_call;
        if bytes > max_bytes {
            return Err(self.contract(
                function,
                format!("returned {bytes} bytes of buffers in one call; the limit is {max_bytes} (engine.limits.max_output_bytes_per_call)"),
            ));
        }
        Ok(())
    }

    fn rejections(&self, function: &'static str, rows: Vec<wit::RowRejection>, num_rows: usize) -> Result<Vec<RowRejection>> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if row.row as usize >= num_rows {
                return Err(self.contract(function, format!("rejected row {} of a {num_rows}-row batch", row.row)));
            }
            out.push(RowRejection { row: row.row, reason: row.reason });
        }
        out.sort_by_key(|r| r.row);
        out.dedup_by_key(|r| r.row);
        Ok(out)
    }

    fn guest_result<T>(&self, function: &'static str, result: std::result::Result<T, wit::OperatorError>) -> Result<T> {
        result.map_err(|error| Error::Guest {
            plugin: self.plugin.name().to_owned(),
            function,
            error: match error {
                wit::OperatorError::InvalidConfig(m) => GuestError::InvalidConfig(m),
                wit::OperatorError::InvalidInput(m) => GuestError::InvalidInput(m),
                wit::OperatorError::Failed(m) => GuestError::Failed(m),
            },
        })
    }

    fn call<R>(
        &mut self,
        function: &'static str,
        f: impl AsyncFnOnce(&mut Store<StoreState>, &Guest) -> wasmtime::Result<R>,
    ) -> Result<R> {
        let limits = self.plugin.limits().clone();
        arm_call(&mut self.store, &limits)
            .map_err(|e| Error::Engine(format!("arming call budget: {e:#}")))?;
        let span = tracing::debug_span!("guest_call", plugin = self.plugin.name(), function);
        let _entered = span.enter();
        let result = run_bounded(&limits, f(&mut self.store, &self.guest));
        self.store.data().log_budget.refill();
        result.map_err(|e| {
            if is_copy_budget_exhausted(&e) {
                let reason = format!(
                    "returned more than {} bytes of lists and strings in one call (lists pointing at the same guest memory count once each); \
                     the limit is twice the larger of engine.limits.memory_limit_bytes and engine.limits.max_output_bytes_per_call",
                    limits.max_copied_bytes_per_call()
                );
                tracing::warn!(plugin = self.plugin.name(), function, "{reason}");
                return self.contract(function, reason);
            }
            Instance::classify_failure(self.plugin.name(), function, &mut self.store, e)
        })
    }

    /// Turns a failed Wasmtime call into a typed trap error.
    pub(super) fn classify_failure(
        plugin: &str,
        function: &'static str,
        store: &mut Store<StoreState>,
        error: wasmtime::Error,
    ) -> Error {
        let recent = store.data().stderr.take_recent();
        let denied_growth = store.data().limiter.denied_growth;
        let panic_at = recent.iter().position(|l| l.contains("panicked at") || l.contains("panicked:"));
        let blocked = error.downcast_ref::<DeadlineExceeded>().is_some();
        let kind = match error.downcast_ref::<wasmtime::Trap>() {
            _ if blocked => TrapKind::Deadline,
            Some(wasmtime::Trap::Interrupt) => TrapKind::Deadline,
            Some(wasmtime::Trap::OutOfFuel) => TrapKind::FuelExhausted,
            Some(wasmtime::Trap::StackOverflow) => TrapKind::StackOverflow,
            Some(_) if denied_growth => TrapKind::OutOfMemory,
            Some(wasmtime::Trap::UnreachableCodeReached) if panic_at.is_some() => TrapKind::Panic,
            Some(wasmtime::Trap::UnreachableCodeReached) => TrapKind::Unreachable,
            Some(_) => TrapKind::Fault,
            None if denied_growth => TrapKind::OutOfMemory,
            None => TrapKind::BadReturn,
        };
        let mut message = match error.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{error:#}"),
        };
        if kind == TrapKind::OutOfMemory {
            message.push_str(" (memory limit reached)");
        }
        if kind == TrapKind::Fault {
            message.push_str(" (in Rust and C guests this is often an overflow of the shadow stack in linear memory)");
        }
        // The guest's own explanation: the panic message (the line after
        // "panicked at" and on), else its last stderr line.
        let explanation: Vec<&str> = match panic_at {
            Some(at) => recent[at..].iter().map(|l| l.trim()).filter(|l| !l.starts_with("note:")).collect(),
            None => recent.last().map(|l| l.trim()).into_iter().collect(),
        };
        if !explanation.is_empty() {
            message.push_str(": ");
            message.push_str(&explanation.join(" "));
        }
        tracing::warn!(plugin, function, trap = %kind, "{message}");
        Error::Trap { plugin: plugin.to_owned(), kind, function, message }
    }
}
