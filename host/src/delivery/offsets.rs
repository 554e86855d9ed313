//! Which offsets a batch lets us commit: for each partition, one past the
//! highest offset in the batch, or, when a record must stop the pipeline,
//! the failed record's own offset (nothing at or after it is committed).

use std::collections::BTreeMap;

/// A topic-partition.
pub type Partition = (String, i32);

/// Offsets to commit, per partition (the next offset to consume).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommitPlan {
    /// Next offset per partition.
    pub next: BTreeMap<Partition, i64>,
}

impl CommitPlan {
    /// The plan for a batch whose records (`(topic, partition, offset)`) were all handled.
    pub fn for_records<'a>(records: impl IntoIterator<Item = (&'a str, i32, i64)>) -> CommitPlan {
        let mut next: BTreeMap<Partition, i64> = BTreeMap::new();
        for (topic, partition, offset) in records {
            let entry = next.entry((topic.to_owned(), partition)).or_insert(offset + 1);
            *entry = (*entry).max(offset + 1);
        }
        CommitPlan { next }
    }

    /// Holds back every partition at its first failed record: the committed
    /// offset is the failed record's, so it is consumed again after a restart.
    pub fn stop_at<'a>(&mut self, failed: impl IntoIterator<Item = (&'a str, i32, i64)>) {
        let mut first: BTreeMap<Partition, i64> = BTreeMap::new();
        for (topic, partition, offset) in failed {
            let entry = first.entry((topic.to_owned(), partition)).or_insert(offset);
            *entry = (*entry).min(offset);
        }
        for (partition, offset) in first {
            self.next.insert(partition, offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_commits_one_past_the_highest_offset_per_partition() {
        let plan = CommitPlan::for_records([("t", 0, 5), ("t", 1, 7), ("t", 0, 9), ("u", 0, 1)]);
        assert_eq!(plan.next[&("t".to_owned(), 0)], 10);
        assert_eq!(plan.next[&("t".to_owned(), 1)], 8);
        assert_eq!(plan.next[&("u".to_owned(), 0)], 2);
    }

    #[test]
    fn stop_holds_partitions_at_their_first_failure() {
        let mut plan = CommitPlan::for_records([("t", 0, 5), ("t", 0, 6), ("t", 0, 7), ("t", 1, 3)]);
        plan.stop_at([("t", 0, 7), ("t", 0, 6)]);
        assert_eq!(plan.next[&("t".to_owned(), 0)], 6);
        assert_eq!(plan.next[&("t".to_owned(), 1)], 4);
    }
}
