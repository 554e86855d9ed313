//! Stateful pipelines run one copy of the operator chain per task, a task
//! being an input partition number (the source topics are co-partitioned:
//! partition `n` of every topic belongs to task `n`, and records of one key
//! land in one partition). Each task's aggregate state is checkpointed with
//! the offsets it covers ([`super::state`]), so a task can move to another
//! process, or come back after a crash, without losing or double counting a
//! record: records before the checkpoint's offsets are skipped, records after
//! them are folded again.
//!
//! A failure inside a task (trap, guest error) may have left its state
//! half-updated, so the task is reset instead of retried in place: the
//! failing records are found by bisection on a scratch copy restored from the
//! checkpoint, dead-lettered and remembered, and the task restarts from its
//! checkpoint with its partitions rewound to the checkpoint's offsets.

use super::source::SourceConsumer;
use super::changelog::KeyedLog;
use super::state::{Checkpoint, OperatorState, StateError, StateStore};
use super::watermark::{Backlog, Trackers, Watermarks};
use crate::config::StateConfig;
use crate::delivery::isolate::{Isolated, is_isolatable, run_isolated};
use crate::engine::{Error, OperatorKind};
use crate::operator::Chain;
use arrow_array::{RecordBatch, UInt32Array};
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

/// Consecutive failures of one task that bisection could not pin on a
/// record, after which the task's rows of the batch are dead-lettered.
const UNEXPLAINED_FAILURES: u32 = 3;

/// Why a stateful step failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The state topic could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// An operator could not be instantiated, restored or snapshotted.
    #[error("task {task}: {source}")]
    Operator {
        /// The task.
        task: i32,
        /// The engine error.
        #[source]
        source: Box<Error>,
    },
    /// A snapshot is larger than `state.max_bytes`.
    #[error("task {task}: state is {bytes} bytes, over state.max_bytes = {max}")]
    TooLarge {
        /// The task.
        task: i32,
        /// Its snapshot size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
}

struct Task {
    chain: Chain,
    /// Next offset per source topic after the records folded so far.
    next: BTreeMap<String, i64>,
    /// Offsets covered by the last durable checkpoint.
    checkpointed: BTreeMap<String, i64>,
    /// Topics whose position was checked against the checkpoint since load.
    checked: HashSet<String>,
    dirty: bool,
    /// The next checkpoint takes every keyed operator's whole state (after a
    /// restore from a whole snapshot or a hot swap: the operator's change
    /// tracking does not cover the difference to the stored entries).
    full: bool,
    unexplained_failures: u32,
    /// The task's own event-time progress (its partitions only), so that a
    /// replay from the checkpoint sees the watermark the checkpoint saw.
    watermarks: Option<Watermarks>,
}

/// What [`Tasks::run`] did with a batch.
pub struct TaskRun {
    /// Outputs of the tasks that succeeded, and the records that failed alone.
    pub isolated: Isolated,
    /// Tasks reset during the batch: their other records are replayed.
    pub reset: HashSet<i32>,
}

/// The tasks of a stateful pipeline and their checkpoints.
pub struct Tasks {
    store: StateStore,
    config: StateConfig,
    tasks: BTreeMap<i32, Task>,
    /// Records already dead-lettered by a task reset (skipped on replay).
    poison: HashSet<(String, i32, i64)>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Allowed lateness and idle timeout, with event time configured.
    event_time: Option<(i64, Duration)>,
    /// Tasks whose checkpoint was looked for in the state topic since they
    /// were assigned (found or not): no second read for them.
    read: HashSet<i32>,
    /// Reads of the state topic so far.
    topic_reads: u64,
}

impl Tasks {
    /// No tasks yet; checkpoints go to `store`. With `event_time` (allowed
    /// lateness in ms, idle timeout), each task tracks its own watermark.
    pub fn new(store: StateStore, config: StateConfig, event_time: Option<(i64, Duration)>) -> Tasks {
        Tasks { store, config, tasks: BTreeMap::new(), poison: HashSet::new(), since_checkpoint: 0, last_checkpoint: Instant::now(), event_time, read: HashSet::new(), topic_reads: 0 }
    }

    /// How many times the state topic was read to its end to load tasks.
    pub fn topic_reads(&self) -> u64 {
        self.topic_reads
    }

    /// The watermarks of task `task` (loaded by [`Tasks::prepare`]).
    pub fn watermarks_mut(&mut self, task: i32) -> Option<&mut Watermarks> {
        self.tasks.get_mut(&task).and_then(|t| t.watermarks.as_mut())
    }

    /// Declares newly assigned partitions to the tasks already loaded (a task
    /// loaded later declares every assigned partition of its own).
    pub fn expect(&mut self, assigned: &[(String, i32)], now: Instant) {
        for (topic, partition) in assigned {
            if let Some(watermarks) = self.watermarks_mut(*partition) {
                watermarks.expect(topic, *partition, now);
            }
        }
    }

    /// The state store.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// Task chains, for hot swap (the next checkpoint takes every task, and
    /// the keyed operators' whole state).
    pub fn chains_mut(&mut self) -> impl Iterator<Item = (i32, &mut Chain)> {
        self.tasks.iter_mut().map(|(task, t)| {
            t.full = true;
            t.dirty = true;
            (*task, &mut t.chain)
        })
    }

    /// Loads the tasks `records` need (one read of the state topic for them
    /// and every other assigned task not read yet) and drops the records the
    /// checkpoints already cover or that a reset dead-lettered. A partition
    /// positioned after its checkpoint (its offsets were committed by an
    /// older owner past the state it wrote) is rewound to the checkpoint and
    /// its records in this batch are dropped. Returns the records dropped.
    pub fn prepare(&mut self, records: &mut Vec<OwnedMessage>, template: &Chain, consumer: &SourceConsumer) -> Result<usize, TaskError> {
        let missing: Vec<i32> = records.iter().map(|r| r.partition()).filter(|p| !self.tasks.contains_key(p)).collect::<HashSet<_>>().into_iter().collect();
        let unread = |t: &i32, store: &StateStore, read: &HashSet<i32>| store.cached(*t).is_none() && !read.contains(t);
        let mut load: BTreeSet<i32> = missing.iter().copied().filter(|t| unread(t, &self.store, &self.read)).collect();
        if !load.is_empty() {
            // One read of the state topic for every assigned task not read
            // yet, not only this batch's: a partition that delivers later
            // (they rarely all do in the first batch) needs no read of its own.
            if let Ok(assignment) = consumer.assignment() {
                load.extend(assignment.elements().iter().map(|e| e.partition()).filter(|t| !self.tasks.contains_key(t) && unread(t, &self.store, &self.read)));
            }
            let load: Vec<i32> = load.into_iter().collect();
            self.store.load(&load)?;
            self.topic_reads += 1;
            self.read.extend(load);
        }
        let now = Instant::now();
        for task in missing {
            let mut chain = template.fresh().map_err(|e| TaskError::Operator { task, source: Box::new(e) })?;
            let checkpoint = self.store.cached(task);
            let mut watermarks = self.event_time.map(|(lateness, idle)| Watermarks::new(lateness, idle));
            let full = restore_chain(&self.store, task, &mut chain).map_err(|e| TaskError::Operator { task, source: Box::new(e) })?;
            if let Some(checkpoint) = checkpoint {
                if let Some(watermarks) = watermarks.as_mut() {
                    for (topic, max) in &checkpoint.max_event_ms {
                        watermarks.observe(topic, task, *max, now);
                    }
                    // The checkpoint's watermark, not one recomputed from the
                    // partitions it had seen: a partition without data yet
                    // must keep holding it.
                    watermarks.restore(checkpoint.watermark_ms);
                }
                tracing::info!(task, offsets = ?checkpoint.offsets, state_bytes = self.store.state_bytes(task), "task restored from its checkpoint");
            }
            // Every source partition of the task holds its watermark until it reports (or idles).
            if let (Some(watermarks), Ok(assignment)) = (watermarks.as_mut(), consumer.assignment()) {
                for element in assignment.elements().iter().filter(|e| e.partition() == task) {
                    watermarks.expect(element.topic(), task, now);
                }
            }
            let offsets = checkpoint.map(|c| c.offsets.clone()).unwrap_or_default();
            self.tasks.insert(task, Task { chain, next: offsets.clone(), checkpointed: offsets, checked: HashSet::new(), dirty: false, full, unexplained_failures: 0, watermarks });
        }
        let before = records.len();
        let mut rewound: HashSet<(String, i32)> = HashSet::new();
        for record in records.iter() {
            let task = self.tasks.get_mut(&record.partition()).expect("loaded above");
            if !task.checked.contains(record.topic())
                && task.checked.insert(record.topic().to_owned())
                && let Some(&offset) = task.checkpointed.get(record.topic())
                && record.offset() > offset
            {
                tracing::warn!(topic = record.topic(), partition = record.partition(), position = record.offset(), checkpoint = offset, "positioned after the checkpoint: rewinding to it");
                seek(consumer, record.topic(), record.partition(), rdkafka::Offset::Offset(offset));
                rewound.insert((record.topic().to_owned(), record.partition()));
            }
        }
        records.retain(|r| {
            let task = &self.tasks[&r.partition()];
            let covered = task.checkpointed.get(r.topic()).is_some_and(|&next| r.offset() < next);
            // The sets are almost always empty: skip the key allocation then.
            !covered
                && (rewound.is_empty() || !rewound.contains(&(r.topic().to_owned(), r.partition())))
                && (self.poison.is_empty() || !self.poison.contains(&(r.topic().to_owned(), r.partition(), r.offset())))
        });
        Ok(before - records.len())
    }

    /// Runs each task's rows of `batch` through the task's chain. A failing
    /// task is reset (see the module documentation); its isolated poison
    /// records are returned as failed.
    pub fn run(
        &mut self,
        template: &Chain,
        batch: RecordBatch,
        record_of_row: Vec<usize>,
        records: &[OwnedMessage],
        consumer: &SourceConsumer,
    ) -> Result<TaskRun, Error> {
        let mut by_task: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
        for (row, &record) in record_of_row.iter().enumerate() {
            by_task.entry(records[record].partition()).or_default().push(row as u32);
        }
        let mut run = TaskRun { isolated: Isolated::default(), reset: HashSet::new() };
        for (task_id, rows) in by_task {
            let part = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                arrow_select::take::take_record_batch(&batch, &UInt32Array::from(rows.clone())).map_err(crate::batch::BatchError::from)?
            };
            let sources: Vec<usize> = rows.iter().map(|&r| record_of_row[r as usize]).collect();
            let task = self.tasks.get_mut(&task_id).expect("prepared");
            let watermark = task.watermarks.as_ref().and_then(Watermarks::peek);
            run.isolated.calls += 1;
            let error = match task.chain.run(part.clone(), watermark) {
                Ok(output) => {
                    task.unexplained_failures = 0;
                    run.isolated.outputs.push((output, sources));
                    continue;
                }
                Err(error) if is_isolatable(&error) => error,
                Err(error) => return Err(error),
            };
            tracing::warn!(task = task_id, rows = part.num_rows(), %error, "task failed: isolating the failing records on a scratch copy, then replaying from the checkpoint");
            let mut scratch = self.scratch(template, task_id)?;
            let isolated = run_isolated(part, sources.clone(), &mut |b| scratch.run(b, watermark))?;
            let task = self.tasks.get_mut(&task_id).expect("prepared");
            let mut failed = isolated.failed;
            if failed.is_empty() {
                task.unexplained_failures += 1;
                if task.unexplained_failures >= UNEXPLAINED_FAILURES {
                    tracing::error!(task = task_id, failures = task.unexplained_failures, "the failure does not reproduce on any single record: dead-lettering the task's rows of this batch");
                    let plugin = match &error {
                        Error::Trap { plugin, .. } | Error::Guest { plugin, .. } | Error::Contract { plugin, .. } => plugin.clone(),
                        _ => String::new(),
                    };
                    let attempts = task.unexplained_failures;
                    failed = sources
                        .iter()
                        .map(|&s| {
                            let reason = format!("the batch failed {attempts} times and no single record reproduces it: {error}");
                            (s, Error::Contract { plugin: plugin.clone(), function: "process", reason }, attempts)
                        })
                        .collect();
                }
            }
            for (record, _, _) in &failed {
                let r = &records[*record];
                self.poison.insert((r.topic().to_owned(), r.partition(), r.offset()));
            }
            run.isolated.calls += isolated.calls;
            run.isolated.failed.extend(failed);
            self.reset(task_id, records, consumer);
            run.reset.insert(task_id);
        }
        Ok(run)
    }

    /// A copy of task `task` restored from its checkpoint (for bisection).
    fn scratch(&self, template: &Chain, task: i32) -> Result<Chain, Error> {
        let mut chain = template.fresh()?;
        restore_chain(&self.store, task, &mut chain)?;
        Ok(chain)
    }

    /// Drops task `task` and rewinds its partitions to the checkpoint (to
    /// the group's committed offsets, or the beginning, without one).
    fn reset(&mut self, task: i32, records: &[OwnedMessage], consumer: &SourceConsumer) {
        let Some(dropped) = self.tasks.remove(&task) else { return };
        let topics: HashSet<&str> = records.iter().filter(|r| r.partition() == task).map(|r| r.topic()).chain(dropped.next.keys().map(String::as_str)).collect();
        let committed = consumer.committed(Duration::from_secs(10)).ok();
        for topic in topics {
            let offset = match dropped.checkpointed.get(topic) {
                Some(&offset) => rdkafka::Offset::Offset(offset),
                None => match committed.as_ref().and_then(|c| c.find_partition(topic, task)).map(|e| e.offset()) {
                    Some(rdkafka::Offset::Offset(offset)) => rdkafka::Offset::Offset(offset),
                    _ => rdkafka::Offset::Beginning,
                },
            };
            seek(consumer, topic, task, offset);
        }
    }

    /// Drops every task's in-memory state (they reload from the cached
    /// checkpoints); the caller rewinds the partitions to the committed
    /// offsets, which are the checkpoints'.
    pub fn reset_all(&mut self) {
        self.tasks.clear();
    }

    /// Forgets tasks whose partitions were revoked (another process may
    /// checkpoint them from now on).
    pub fn forget(&mut self, revoked: &HashSet<(String, i32)>) {
        for (_, partition) in revoked {
            self.read.remove(partition);
            if self.tasks.remove(partition).is_some() {
                tracing::info!(task = partition, "task revoked: state dropped (the next owner restores the checkpoint)");
            }
            self.store.forget(*partition);
        }
    }

    /// Records that `records` (minus those of `reset` tasks) are folded.
    pub fn advance(&mut self, records: &[OwnedMessage], reset: &HashSet<i32>) {
        for record in records.iter().filter(|r| !reset.contains(&r.partition())) {
            if let Some(task) = self.tasks.get_mut(&record.partition()) {
                let after = record.offset() + 1;
                match task.next.get_mut(record.topic()) {
                    Some(next) => *next = (*next).max(after),
                    None => {
                        task.next.insert(record.topic().to_owned(), after);
                    }
                }
                task.dirty = true;
                self.since_checkpoint += 1;
            }
        }
    }

    /// Whether a checkpoint is due (`checkpoint_records` or `checkpoint_interval_ms`).
    pub fn due(&self) -> bool {
        self.since_checkpoint > 0
            && (self.since_checkpoint >= self.config.checkpoint_records
                || self.last_checkpoint.elapsed() >= Duration::from_millis(self.config.checkpoint_interval_ms))
    }

    /// Snapshots every task changed since its last checkpoint: whole
    /// snapshots, and for keyed operators the entries changed since.
    pub fn snapshot(&mut self) -> Result<Vec<Checkpoint>, TaskError> {
        let written_at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
        let mut changed = Vec::new();
        for (&task, state) in self.tasks.iter_mut().filter(|(_, t)| t.dirty) {
            changed.push((task, state, self.store.take_seq(task)));
        }
        // Each task has its own instances: their snapshots (guest calls
        // that serialise the state) run on two cores.
        let (store, config) = (&self.store, &self.config);
        let snapshots = on_two_threads(changed, |(task, state, seq)| checkpoint_of(store, config, task, state, seq, written_at_ms));
        let mut checkpoints = Vec::new();
        let mut failed = None;
        for snapshot in snapshots {
            match snapshot {
                Ok(checkpoint) => checkpoints.push(checkpoint),
                Err(error) => failed = failed.or(Some(error)),
            }
        }
        // Records folded from now on count towards the next checkpoint,
        // whether this one is written in the background or not.
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        if let Some(error) = failed {
            // Keyed operators handed over changes that are not written now:
            // the next checkpoint compares their whole state instead.
            for task in self.tasks.values_mut() {
                task.full = true;
            }
            return Err(error);
        }
        Ok(checkpoints)
    }

    /// Marks `checkpoints` durable: their offsets may now be committed.
    pub fn confirm(&mut self, checkpoints: Vec<Checkpoint>) {
        for checkpoint in checkpoints {
            if let Some(task) = self.tasks.get_mut(&checkpoint.task) {
                task.checkpointed = checkpoint.offsets.clone();
                task.dirty = task.next != task.checkpointed;
                task.full = false;
            }
            self.store.confirm(checkpoint);
        }
    }

    /// Offsets covered by durable checkpoints, for every owned task.
    pub fn committable(&self) -> BTreeMap<(String, i32), i64> {
        let mut offsets = BTreeMap::new();
        for (&task, state) in &self.tasks {
            for (topic, &offset) in &state.checkpointed {
                offsets.insert((topic.clone(), task), offset);
            }
        }
        offsets
    }

    /// Bytes of durable state of owned tasks (snapshots and keyed entries).
    pub fn state_bytes(&self) -> u64 {
        self.tasks.keys().map(|t| self.store.state_bytes(*t)).sum()
    }

    /// Owned tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task is owned.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// `f` over `items`, in order: on this thread and a second one when there
/// are two items or more and the machine has a second core.
fn on_two_threads<I: Send, R: Send>(items: Vec<I>, f: impl Fn(I) -> R + Sync) -> Vec<R> {
    if items.len() < 2 || super::cores() < 2 {
        return items.into_iter().map(f).collect();
    }
    let count = items.len();
    let (mine, theirs): (Vec<_>, Vec<_>) = items.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let run = |part: Vec<(usize, I)>| part.into_iter().map(|(i, item)| (i, f(item))).collect::<Vec<_>>();
    let (here, there) = std::thread::scope(|scope| {
        let there = scope.spawn(|| run(theirs));
        (run(mine), there.join())
    });
    let there = there.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let mut out: Vec<Option<R>> = std::iter::repeat_with(|| None).take(count).collect();
    for (i, result) in here.into_iter().chain(there) {
        out[i] = Some(result);
    }
    out.into_iter().map(|r| r.expect("every item ran")).collect()
}

/// The checkpoint of `task` (number `seq`): whole snapshots, and for keyed
/// operators the entries changed since the last checkpoint.
fn checkpoint_of(store: &StateStore, config: &StateConfig, task: i32, state: &mut Task, seq: u64, written_at_ms: i64) -> Result<Checkpoint, TaskError> {
    let mut operators = Vec::new();
    let mut keyed = Vec::new();
    for operator in state.chain.operators_mut().iter_mut().filter(|o| o.kind() == OperatorKind::Aggregate) {
        let failed = |e| TaskError::Operator { task, source: Box::new(e) };
        let name = operator.plugin().name().to_owned();
        if operator.keyed_state() {
            let changes = if state.full { operator.snapshot_entries() } else { operator.snapshot_changes() }.map_err(failed)?;
            let empty = KeyedLog::default();
            let write = store.keyed_log(task, &name).unwrap_or(&empty).plan(task, &name, seq, changes, state.full);
            if write.largest_value() > config.max_bytes {
                return Err(TaskError::TooLarge { task, bytes: write.largest_value(), max: config.max_bytes });
            }
            operators.push(OperatorState::keyed(name, operator.version()));
            keyed.push(write);
        } else {
            let bytes = operator.snapshot().map_err(failed)?;
            operators.push(OperatorState::new(name, operator.version(), bytes));
        }
    }
    let max_event_ms = state.next.keys().filter_map(|topic| state.watermarks.as_ref().and_then(|w| w.max_event_ms(topic, task)).map(|ms| (topic.clone(), ms))).collect();
    let watermark_ms = state.watermarks.as_ref().and_then(Watermarks::peek);
    let checkpoint = Checkpoint { task, offsets: state.next.clone(), max_event_ms, watermark_ms, written_at_ms, operators, seq, keyed };
    if checkpoint.state_bytes() > config.max_bytes {
        return Err(TaskError::TooLarge { task, bytes: checkpoint.state_bytes(), max: config.max_bytes });
    }
    Ok(checkpoint)
}

/// Restores each aggregate of a fresh `chain` from `task`'s durable state:
/// keyed entries through `restore-entries`, a whole snapshot through
/// `restore`. Returns whether a keyed operator was restored from a whole
/// snapshot (its next checkpoint must then take its whole state).
fn restore_chain(store: &StateStore, task: i32, chain: &mut Chain) -> Result<bool, Error> {
    let Some(checkpoint) = store.cached(task) else { return Ok(false) };
    let mut full = false;
    for operator in chain.operators_mut().iter_mut().filter(|o| o.kind() == OperatorKind::Aggregate) {
        let name = operator.plugin().name().to_owned();
        if checkpoint.is_keyed(&name) {
            let entries = store.keyed_log(task, &name).map(KeyedLog::entries).unwrap_or_default();
            if operator.keyed_state() {
                operator.restore_entries(&entries)?;
            } else {
                // A whole-snapshot version after a keyed one: only the SDKs'
                // single-entry form (the snapshot under the empty key) fits.
                match entries.as_slice() {
                    [] => {}
                    [(b"", snapshot)] => operator.restore(snapshot)?,
                    _ => {
                        return Err(Error::Contract {
                            plugin: name,
                            function: "restore",
                            reason: format!("task {task}'s state was checkpointed key by key (weir:operator@0.1.1 keyed-state) and this version exports no keyed-state to restore it"),
                        });
                    }
                }
            }
        } else if let Some(state) = checkpoint.state_of(&name) {
            operator.restore(state)?;
            full |= operator.keyed_state();
        } else {
            tracing::warn!(task, operator = %name, "the checkpoint has no state for this operator: it starts empty");
        }
    }
    Ok(full)
}

fn seek(consumer: &SourceConsumer, topic: &str, partition: i32, offset: rdkafka::Offset) {
    if let Err(error) = consumer.seek(topic, partition, offset, Duration::from_secs(5)) {
        tracing::warn!(topic, partition, ?offset, %error, "seek failed");
    }
}

impl Trackers for Tasks {
    fn tracker(&mut self, partition: i32) -> Option<&mut Watermarks> {
        self.watermarks_mut(partition)
    }

    /// Advances every task's watermark; returns the smallest (for status).
    fn advance(&mut self, now: Instant, backlog: &dyn Backlog) -> Option<i64> {
        self.tasks.values_mut().filter_map(|t| t.watermarks.as_mut().and_then(|w| w.current(now, backlog))).min()
    }
}

#[cfg(test)]
mod tests {
    use super::on_two_threads;

    #[test]
    fn work_on_two_threads_comes_back_in_order_and_uses_a_second_thread() {
        let caller = std::thread::current().id();
        let results = on_two_threads((0..7).collect(), |i: u32| (i * 10, std::thread::current().id()));
        assert_eq!(results.iter().map(|(v, _)| *v).collect::<Vec<_>>(), [0, 10, 20, 30, 40, 50, 60]);
        let elsewhere = results.iter().filter(|(_, thread)| *thread != caller).count();
        if std::thread::available_parallelism().map_or(1, std::num::NonZero::get) >= 2 {
            assert_eq!(elsewhere, 3, "the odd items run on the second thread");
        } else {
            assert_eq!(elsewhere, 0);
        }
        assert_eq!(on_two_threads(vec![5], |i: u32| i + 1), [6], "one item runs here");
    }
}
