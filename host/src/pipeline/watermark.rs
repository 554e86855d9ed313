//! Event time and watermarks. Each input partition's watermark is the
//! largest event time seen on it minus the allowed lateness; the pipeline's
//! watermark is the minimum over its active partitions, so a slow partition
//! holds results back until it catches up. A partition that has sent nothing
//! for the idle timeout stops holding the watermark back. The watermark never
//! moves backwards; aggregate operators receive it with every batch.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use std::collections::HashMap;
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

struct PartitionClock {
    /// Largest event time seen; none for an assigned partition without data yet.
    max_event_ms: Option<i64>,
    last_seen: Instant,
}

/// Per-partition event-time progress and the pipeline watermark.
pub struct Watermarks {
    allowed_lateness_ms: i64,
    idle_timeout: Duration,
    partitions: HashMap<(String, i32), PartitionClock>,
    emitted: Option<i64>,
}

impl Watermarks {
    /// Tracks watermarks with this lateness and idle timeout.
    pub fn new(allowed_lateness_ms: i64, idle_timeout: Duration) -> Watermarks {
        Watermarks { allowed_lateness_ms, idle_timeout, partitions: HashMap::new(), emitted: None }
    }

    /// Declares an assigned partition: until it sends data (or stays silent
    /// for the idle timeout) it holds the watermark where it is.
    pub fn expect(&mut self, topic: &str, partition: i32, now: Instant) {
        self.partitions.entry((topic.to_owned(), partition)).or_insert(PartitionClock { max_event_ms: None, last_seen: now });
    }

    /// Records an event time seen on a partition.
    pub fn observe(&mut self, topic: &str, partition: i32, event_ms: i64, now: Instant) {
        match self.partitions.get_mut(&(topic.to_owned(), partition)) {
            Some(clock) => {
                clock.max_event_ms = Some(clock.max_event_ms.map_or(event_ms, |m| m.max(event_ms)));
                clock.last_seen = now;
            }
            None => {
                self.partitions.insert((topic.to_owned(), partition), PartitionClock { max_event_ms: Some(event_ms), last_seen: now });
            }
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
        self.partitions.get(&(topic.to_owned(), partition)).and_then(|c| c.max_event_ms)
    }

    /// Stops tracking partitions this process no longer owns.
    pub fn forget(&mut self, partitions: impl IntoIterator<Item = (String, i32)>) {
        for key in partitions {
            self.partitions.remove(&key);
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

    /// The watermark now: min over active partitions of (max event time -
    /// allowed lateness); idle partitions are skipped unless all are idle,
    /// and an active partition without data holds it. Never smaller than a
    /// watermark returned before; None before any event.
    pub fn current(&mut self, now: Instant) -> Option<i64> {
        let active: Vec<Option<i64>> = self.partitions.values().filter(|c| now.duration_since(c.last_seen) < self.idle_timeout).map(|c| c.max_event_ms).collect();
        let computed = if active.is_empty() {
            self.partitions.values().filter_map(|c| c.max_event_ms).max()
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array, TimestampMicrosecondArray};
    use std::sync::Arc;

    #[test]
    fn the_slowest_active_partition_holds_the_watermark() {
        let t0 = Instant::now();
        let mut marks = Watermarks::new(1_000, Duration::from_secs(30));
        assert_eq!(marks.current(t0), None);
        marks.observe("orders", 0, 10_000, t0);
        marks.observe("orders", 1, 4_000, t0);
        assert_eq!(marks.current(t0), Some(3_000));
        marks.observe("orders", 1, 12_000, t0);
        assert_eq!(marks.current(t0), Some(9_000));
        // Out-of-order events do not move it back.
        marks.observe("orders", 0, 2_000, t0);
        assert_eq!(marks.current(t0), Some(9_000));
    }

    #[test]
    fn idle_partitions_stop_holding_it_back_and_it_never_regresses() {
        let t0 = Instant::now();
        let mut marks = Watermarks::new(0, Duration::from_secs(5));
        marks.observe("t", 0, 1_000, t0);
        marks.observe("t", 1, 50_000, t0);
        assert_eq!(marks.current(t0), Some(1_000));
        let later = t0 + Duration::from_secs(6);
        marks.observe("t", 1, 60_000, later);
        assert_eq!(marks.current(later), Some(60_000), "partition 0 is idle");
        marks.observe("t", 0, 2_000, later);
        assert_eq!(marks.current(later), Some(60_000), "a resumed slow partition does not move it back");
        marks.forget([("t".to_owned(), 1)]);
        assert_eq!(marks.current(later), Some(60_000));
    }

    #[test]
    fn an_expected_partition_without_data_holds_the_watermark_until_idle() {
        let t0 = Instant::now();
        let mut marks = Watermarks::new(5_000, Duration::from_secs(5));
        marks.expect("high-value", 0, t0);
        marks.observe("regular", 0, 50_000, t0);
        assert_eq!(marks.current(t0), None, "high-value/0 has not reported yet");
        marks.observe("high-value", 0, 10_000, t0);
        assert_eq!(marks.current(t0), Some(5_000));
        // Lateness is per partition: 46 s is fine on regular/0 (max 50 s) ...
        assert!(!marks.is_late("regular", 0, 46_000));
        // ... 44 s is not, although the pipeline watermark is only 5 s.
        assert!(marks.is_late("regular", 0, 44_000));
        // The restored watermark of a checkpoint is kept.
        marks.restore(Some(7_000));
        assert!(marks.is_late("high-value", 0, 6_000));
        let later = t0 + Duration::from_secs(6);
        marks.expect("other", 0, t0);
        assert_eq!(marks.current(later), Some(45_000), "every partition idle: the largest wins");
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
