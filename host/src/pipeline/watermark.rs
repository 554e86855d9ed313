//! Event time and watermarks. Each input partition's watermark is the
//! largest event time seen on it minus the allowed lateness; the pipeline's
//! watermark is the minimum over its active partitions, so a slow partition
//! holds results back until it catches up. A partition stops holding the
//! watermark back only when it is idle: consumed up to its end and silent for
//! the idle timeout (never while it still has a backlog). The watermark never
//! moves backwards; aggregate operators receive it with every batch.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use super::decode::Decoded;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Why event times could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventTimeError {
    /// The configured column is not in the batch.
    #[error("event-time column `{0}` is missing")]
    MissingColumn(String),
    /// The column has a type that is not a time.
    #[error("event-time column `{column}` is {found}; expected int64 (Unix ms) or timestamp")]
    WrongType {
        /// Column.
        column: String,
        /// Its type.
        found: DataType,
    },
    /// Taking the late rows out of the batch failed.
    #[error("removing late rows: {0}")]
    Filter(arrow_schema::ArrowError),
}

/// Event time of each row of `batch` in Unix milliseconds (None for nulls).
pub fn event_times_ms(batch: &RecordBatch, column: &str) -> Result<Vec<Option<i64>>, EventTimeError> {
    let array = batch.column_by_name(column).ok_or_else(|| EventTimeError::MissingColumn(column.to_owned()))?;
    let scaled = |values: &dyn Fn(usize) -> i64, scale: &dyn Fn(i64) -> i64| -> Vec<Option<i64>> {
        (0..array.len()).map(|i| array.is_valid(i).then(|| scale(values(i)))).collect()
    };
    Ok(match array.data_type() {
        DataType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            scaled(&|i| a.value(i), &|v| v)
        }
        DataType::Timestamp(TimeUnit::Second, _) => {
            let a = array.as_primitive::<TimestampSecondType>();
            scaled(&|i| a.value(i), &|v| v.saturating_mul(1000))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            let a = array.as_primitive::<TimestampMillisecondType>();
            scaled(&|i| a.value(i), &|v| v)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let a = array.as_primitive::<TimestampMicrosecondType>();
            scaled(&|i| a.value(i), &|v| v.div_euclid(1000))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            let a = array.as_primitive::<TimestampNanosecondType>();
            scaled(&|i| a.value(i), &|v| v.div_euclid(1_000_000))
        }
        other => return Err(EventTimeError::WrongType { column: column.to_owned(), found: other.clone() }),
    })
}

/// Where consumption stands on each input partition, as far as the
/// watermark needs it: whether everything the partition held has been
/// delivered to the pipeline. A partition with a backlog never counts as
/// idle, however slowly its fetches arrive.
pub trait Backlog {
    /// Whether this process has consumed the partition up to its end (last
    /// stable offset under `read_committed`). Unknown means not caught up.
    fn caught_up(&self, topic: &str, partition: i32) -> bool;
}

/// A backlog that is always caught up: idleness is wall-clock silence alone
/// (sources that have no notion of a backlog, and tests).
pub struct NoBacklog;

impl Backlog for NoBacklog {
    fn caught_up(&self, _topic: &str, _partition: i32) -> bool {
        true
    }
}

struct PartitionClock {
    /// Largest event time seen; none for an assigned partition without data yet.
    max_event_ms: Option<i64>,
    /// When the partition last delivered a record (or was assigned).
    last_seen: Instant,
}

/// Per-partition event-time progress and the pipeline watermark.
///
/// The rule, the same with or without `state` and under either guarantee
/// (docs/event-time.md): an assigned partition holds the watermark until it
/// has delivered data; it stops holding it only when it is idle, meaning
/// the consumer has caught up with it (see [`Backlog`]) and nothing arrived
/// from it for the idle timeout.
pub struct Watermarks {
    allowed_lateness_ms: i64,
    idle_timeout: Duration,
    /// Per topic, per partition (looked up by `&str`: no allocation per row).
    partitions: HashMap<String, HashMap<i32, PartitionClock>>,
    emitted: Option<i64>,
}

impl Watermarks {
    /// Tracks watermarks with this lateness and idle timeout.
    pub fn new(allowed_lateness_ms: i64, idle_timeout: Duration) -> Watermarks {
        Watermarks { allowed_lateness_ms, idle_timeout, partitions: HashMap::new(), emitted: None }
    }

    /// Declares an assigned partition: until it delivers data (or is idle:
    /// caught up and silent for the idle timeout) it holds the watermark
    /// where it is. Declaring a known partition changes nothing.
    pub fn expect(&mut self, topic: &str, partition: i32, now: Instant) {
        if !self.tracks(topic, partition) {
            self.insert(topic, partition, PartitionClock { max_event_ms: None, last_seen: now });
        }
    }

    fn clock(&self, topic: &str, partition: i32) -> Option<&PartitionClock> {
        self.partitions.get(topic)?.get(&partition)
    }

    fn clock_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionClock> {
        self.partitions.get_mut(topic)?.get_mut(&partition)
    }

    fn insert(&mut self, topic: &str, partition: i32, clock: PartitionClock) {
        self.partitions.entry(topic.to_owned()).or_default().insert(partition, clock);
    }

    /// Whether a partition is tracked (assigned and not forgotten).
    pub fn tracks(&self, topic: &str, partition: i32) -> bool {
        self.clock(topic, partition).is_some()
    }

    /// Records an event time seen on a partition.
    pub fn observe(&mut self, topic: &str, partition: i32, event_ms: i64, now: Instant) {
        match self.clock_mut(topic, partition) {
            Some(clock) => {
                clock.max_event_ms = Some(clock.max_event_ms.map_or(event_ms, |m| m.max(event_ms)));
                clock.last_seen = now;
            }
            None => {
                self.insert(topic, partition, PartitionClock { max_event_ms: Some(event_ms), last_seen: now });
            }
        }
    }

    /// Notes that a partition delivered records (with or without usable
    /// event times): it is not idle.
    pub fn touch(&mut self, topic: &str, partition: i32, now: Instant) {
        if let Some(clock) = self.clock_mut(topic, partition) {
            clock.last_seen = now;
        }
    }

    /// Whether an event at `event_ms` on this partition is late: more than
    /// the allowed lateness behind the largest event time seen before it on
    /// the same partition (which depends only on the partition's order, so
    /// a replay decides the same way), or behind the pipeline watermark
    /// (possible only after an idle partition stopped holding it back).
    pub fn is_late(&self, topic: &str, partition: i32, event_ms: i64) -> bool {
        self.late_mark(topic, partition).is_some_and(|mark| event_ms < mark)
    }

    /// The event time before which a record of this partition is late (see
    /// [`Watermarks::is_late`]).
    pub fn late_mark(&self, topic: &str, partition: i32) -> Option<i64> {
        let own = self.max_event_ms(topic, partition).map(|m| m.saturating_sub(self.allowed_lateness_ms));
        own.max(self.emitted)
    }

    /// The largest event time seen on a partition.
    pub fn max_event_ms(&self, topic: &str, partition: i32) -> Option<i64> {
        self.clock(topic, partition).and_then(|c| c.max_event_ms)
    }

    /// Stops tracking partitions this process no longer owns.
    pub fn forget(&mut self, partitions: impl IntoIterator<Item = (String, i32)>) {
        for key in partitions {
            if let Some(topic) = self.partitions.get_mut(&key.0) {
                topic.remove(&key.1);
                if topic.is_empty() {
                    self.partitions.remove(&key.0);
                }
            }
        }
    }

    /// Restores a watermark returned before (from a checkpoint): it will not
    /// go back below it.
    pub fn restore(&mut self, watermark: Option<i64>) {
        self.emitted = self.emitted.max(watermark);
    }

    /// The last watermark returned by [`Watermarks::current`], if any.
    pub fn peek(&self) -> Option<i64> {
        self.emitted
    }

    /// The watermark now: min over the partitions that are not idle of (max
    /// event time - allowed lateness); a partition that is not idle and has
    /// no data yet holds it where it is. When every partition is idle, the
    /// largest. Never smaller than a watermark returned before; None before
    /// any event.
    pub fn current(&mut self, now: Instant, backlog: &dyn Backlog) -> Option<i64> {
        let idle_timeout = self.idle_timeout;
        // Asking the backlog costs a look-up: only partitions silent for the
        // idle timeout can be idle.
        let active: Vec<Option<i64>> = self
            .partitions
            .iter()
            .flat_map(|(topic, clocks)| clocks.iter().map(move |(partition, c)| ((topic, partition), c)))
            .filter(|((topic, partition), c)| now.saturating_duration_since(c.last_seen) < idle_timeout || !backlog.caught_up(topic, **partition))
            .map(|(_, c)| c.max_event_ms)
            .collect();
        let computed = if active.is_empty() {
            self.partitions.values().flat_map(HashMap::values).filter_map(|c| c.max_event_ms).max()
        } else if active.iter().any(Option::is_none) {
            None
        } else {
            active.into_iter().flatten().min()
        };
        let Some(computed) = computed else { return self.emitted };
        let watermark = computed.saturating_sub(self.allowed_lateness_ms);
        let watermark = self.emitted.map_or(watermark, |previous| previous.max(watermark));
        self.emitted = Some(watermark);
        Some(watermark)
    }
}

/// A row taken out of a batch because it arrived behind the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LateRow {
    /// Index of its source record in the batch's records.
    pub record: usize,
    /// Its event time (Unix ms).
    pub event_ms: i64,
    /// The mark it was behind (see [`Watermarks::late_mark`]).
    pub mark_ms: i64,
}

/// The trackers a batch's rows are judged by: the pipeline's one
/// [`Watermarks`] (no `state`), or one per task (with `state`, keyed by
/// partition number; see `pipeline::tasks`).
pub trait Trackers {
    /// The tracker of a row from this partition; none if it is not loaded.
    fn tracker(&mut self, partition: i32) -> Option<&mut Watermarks>;
    /// Advances every tracker to `now`; returns the smallest watermark.
    fn advance(&mut self, now: Instant, backlog: &dyn Backlog) -> Option<i64>;
}

impl Trackers for Watermarks {
    fn tracker(&mut self, _partition: i32) -> Option<&mut Watermarks> {
        Some(self)
    }

    fn advance(&mut self, now: Instant, backlog: &dyn Backlog) -> Option<i64> {
        self.current(now, backlog)
    }
}

impl Trackers for BTreeMap<i32, Watermarks> {
    fn tracker(&mut self, partition: i32) -> Option<&mut Watermarks> {
        self.get_mut(&partition)
    }

    fn advance(&mut self, now: Instant, backlog: &dyn Backlog) -> Option<i64> {
        self.values_mut().filter_map(|w| w.current(now, backlog)).min()
    }
}

/// The event-time step of a batch, the same in every mode: takes the rows
/// behind their partition's late mark out of `decoded` (in row order, so
/// lateness depends only on each partition's order), folds the others'
/// event times into their trackers, then advances the watermark. `source`
/// gives the topic and partition of a record index. Returns the watermark
/// the aggregates get with this batch and the late rows.
pub fn split_late<'r>(
    decoded: &mut Decoded,
    column: &str,
    source: impl Fn(usize) -> (&'r str, i32),
    trackers: &mut dyn Trackers,
    now: Instant,
    backlog: &dyn Backlog,
) -> Result<(Option<i64>, Vec<LateRow>), EventTimeError> {
    let times = event_times_ms(&decoded.batch, column)?;
    let mut late = Vec::new();
    let mut keep = Vec::with_capacity(times.len());
    for (row, time) in times.into_iter().enumerate() {
        let record = decoded.record_of_row[row];
        let (topic, partition) = source(record);
        let Some(watermarks) = trackers.tracker(partition) else {
            keep.push(true);
            continue;
        };
        match time {
            Some(event_ms) => match watermarks.late_mark(topic, partition) {
                Some(mark_ms) if event_ms < mark_ms => {
                    watermarks.touch(topic, partition, now);
                    late.push(LateRow { record, event_ms, mark_ms });
                    keep.push(false);
                }
                _ => {
                    watermarks.observe(topic, partition, event_ms, now);
                    keep.push(true);
                }
            },
            None => {
                watermarks.touch(topic, partition, now);
                keep.push(true);
            }
        }
    }
    if !late.is_empty() {
        let mask = arrow_array::BooleanArray::from(keep.clone());
        decoded.batch = arrow_select::filter::filter_record_batch(&decoded.batch, &mask).map_err(EventTimeError::Filter)?;
        let mut rows = keep.iter();
        decoded.record_of_row.retain(|_| *rows.next().expect("one flag per row"));
    }
    Ok((trackers.advance(now, backlog), late))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array, TimestampMicrosecondArray};
    use std::sync::Arc;

    #[test]
    fn the_slowest_active_partition_holds_the_watermark() {
        let t0 = Instant::now();
        let mut marks = Watermarks::new(1_000, Duration::from_secs(30));
        assert_eq!(marks.current(t0, &NoBacklog), None);
        marks.observe("orders", 0, 10_000, t0);
        marks.observe("orders", 1, 4_000, t0);
        assert_eq!(marks.current(t0, &NoBacklog), Some(3_000));
        marks.observe("orders", 1, 12_000, t0);
        assert_eq!(marks.current(t0, &NoBacklog), Some(9_000));
        // Out-of-order events do not move it back.
        marks.observe("orders", 0, 2_000, t0);
        assert_eq!(marks.current(t0, &NoBacklog), Some(9_000));
    }

    #[test]
    fn idle_partitions_stop_holding_it_back_and_it_never_regresses() {
        let t0 = Instant::now();
        let mut marks = Watermarks::new(0, Duration::from_secs(5));
        marks.observe("t", 0, 1_000, t0);
        marks.observe("t", 1, 50_000, t0);
        assert_eq!(marks.current(t0, &NoBacklog), Some(1_000));
        let later = t0 + Duration::from_secs(6);
        marks.observe("t", 1, 60_000, later);
        assert_eq!(marks.current(later, &NoBacklog), Some(60_000), "partition 0 is idle");
        marks.observe("t", 0, 2_000, later);
        assert_eq!(marks.current(later, &NoBacklog), Some(60_000), "a resumed slow partition does not move it back");
        marks.forget([("t".to_owned(), 1)]);
        assert_eq!(marks.current(later, &NoBacklog), Some(60_000));
    }

    #[test]
    fn an_expected_partition_without_data_holds_the_watermark_until_idle() {
        let t0 = Instant::now();
        let mut marks = Watermarks::new(5_000, Duration::from_secs(5));
        marks.expect("high-value", 0, t0);
        marks.observe("regular", 0, 50_000, t0);
        assert_eq!(marks.current(t0, &NoBacklog), None, "high-value/0 has not reported yet");
        marks.observe("high-value", 0, 10_000, t0);
        assert_eq!(marks.current(t0, &NoBacklog), Some(5_000));
        // Lateness is per partition: 46 s is fine on regular/0 (max 50 s) ...
        assert!(!marks.is_late("regular", 0, 46_000));
        // ... 44 s is not, although the pipeline watermark is only 5 s.
        assert!(marks.is_late("regular", 0, 44_000));
        // The restored watermark of a checkpoint is kept.
        marks.restore(Some(7_000));
        assert!(marks.is_late("high-value", 0, 6_000));
        let later = t0 + Duration::from_secs(6);
        marks.expect("other", 0, t0);
        assert_eq!(marks.current(later, &NoBacklog), Some(45_000), "every partition idle: the largest wins");
    }

    /// Caught up on exactly the partitions listed.
    struct CaughtUp(Vec<(&'static str, i32)>);

    impl Backlog for CaughtUp {
        fn caught_up(&self, topic: &str, partition: i32) -> bool {
            self.0.iter().any(|(t, p)| *t == topic && *p == partition)
        }
    }

    #[test]
    fn a_partition_with_a_backlog_holds_the_watermark_however_long_its_fetches_take() {
        let t0 = Instant::now();
        let mut marks = Watermarks::new(0, Duration::from_secs(5));
        marks.observe("t", 0, 1_000, t0);
        marks.observe("t", 1, 50_000, t0);
        let later = t0 + Duration::from_secs(60);
        marks.observe("t", 1, 90_000, later);
        // Partition 0 has been silent for a minute but is still behind its end.
        assert_eq!(marks.current(later, &CaughtUp(vec![("t", 1)])), Some(1_000));
        // Caught up and silent: idle, it stops holding the watermark.
        assert_eq!(marks.current(later, &CaughtUp(vec![("t", 0), ("t", 1)])), Some(90_000));
    }

    #[test]
    fn an_assigned_partition_without_data_holds_until_it_is_caught_up_and_silent() {
        let t0 = Instant::now();
        let mut marks = Watermarks::new(0, Duration::from_secs(5));
        marks.expect("t", 0, t0);
        marks.expect("t", 1, t0);
        marks.observe("t", 1, 50_000, t0);
        let later = t0 + Duration::from_secs(6);
        assert_eq!(marks.current(later, &CaughtUp(vec![])), None, "partition 0 has not been fetched yet");
        assert_eq!(marks.current(t0, &CaughtUp(vec![("t", 0)])), None, "empty, but not silent for the idle timeout yet");
        assert_eq!(marks.current(later, &CaughtUp(vec![("t", 0)])), Some(50_000), "empty and silent: idle");
    }

    #[test]
    fn rows_are_late_by_their_own_partition_order_in_every_mode() {
        let t0 = Instant::now();
        let batch = RecordBatch::try_from_iter([("ts", Arc::new(Int64Array::from(vec![Some(10_000), Some(1_000), Some(8_500), None, Some(9_000)])) as ArrayRef)]).unwrap();
        let partitions = [0, 1, 0, 1, 0];
        let decode = || Decoded { batch: batch.clone(), record_of_row: (0..5).collect(), failed: Vec::new(), busy: Default::default() };
        // One tracker for the pipeline: partition 1 (1 s) does not make
        // partition 0's 8.5 s late; 8.5 s is 1.5 s behind 10 s on partition 0.
        let mut shared = Watermarks::new(1_000, Duration::from_secs(30));
        shared.expect("t", 0, t0);
        shared.expect("t", 1, t0);
        let mut decoded = decode();
        let (watermark, late) = split_late(&mut decoded, "ts", |r| ("t", partitions[r]), &mut shared, t0, &NoBacklog).unwrap();
        assert_eq!(late, vec![LateRow { record: 2, event_ms: 8_500, mark_ms: 9_000 }]);
        assert_eq!(decoded.record_of_row, vec![0, 1, 3, 4]);
        assert_eq!(watermark, Some(0), "min over partitions (1 s) minus the lateness");
        // One tracker per task decides the same rows.
        let mut tasks: BTreeMap<i32, Watermarks> = [(0, Watermarks::new(1_000, Duration::from_secs(30))), (1, Watermarks::new(1_000, Duration::from_secs(30)))].into();
        let mut decoded = decode();
        let (watermark, late_by_task) = split_late(&mut decoded, "ts", |r| ("t", partitions[r]), &mut tasks, t0, &NoBacklog).unwrap();
        assert_eq!(late_by_task, late);
        assert_eq!(watermark, Some(0));
        assert_eq!(tasks[&0].peek(), Some(9_000));
    }

    #[test]
    fn event_times_come_from_int64_or_any_timestamp_unit() {
        let batch = RecordBatch::try_from_iter([
            ("ms", Arc::new(Int64Array::from(vec![Some(1_500), None])) as ArrayRef),
            ("us", Arc::new(TimestampMicrosecondArray::from(vec![Some(2_500_000), Some(-1)])) as ArrayRef),
        ])
        .unwrap();
        assert_eq!(event_times_ms(&batch, "ms").unwrap(), vec![Some(1_500), None]);
        assert_eq!(event_times_ms(&batch, "us").unwrap(), vec![Some(2_500), Some(-1)]);
        assert!(matches!(event_times_ms(&batch, "nope"), Err(EventTimeError::MissingColumn(_))));
    }
}
