//! The event-time step of a batch: rows behind the watermark are taken out
//! (late), the others advance the watermark (docs/event-time.md).

use super::*;

impl Worker {
    /// Takes the rows that arrive behind the watermark out of `decoded`,
    /// folds the other rows' event times into the watermarks (the
    /// pipeline's, or each task's), and returns the watermark aggregates get
    /// with this batch. Partitions with a backlog are never idle (see
    /// [`watermark::Backlog`]).
    pub(super) fn advance_watermark(&mut self, decoded: &mut decode::Decoded, records: &[OwnedMessage]) -> Result<(Option<i64>, Vec<watermark::LateRow>), PipelineError> {
        let Some(event_time) = self.config.event_time.as_ref() else { return Ok((None, Vec::new())) };
        let trackers: &mut dyn watermark::Trackers = match (self.tasks.as_mut(), self.watermarks.as_mut()) {
            (Some(tasks), _) => tasks,
            (None, Some(watermarks)) => watermarks,
            (None, None) => return Ok((None, Vec::new())),
        };
        let backlog = source::ConsumerBacklog::new(&self.consumer, &self.consumed);
        let (current, late) = watermark::split_late(decoded, &event_time.column, |r| (records[r].topic(), records[r].partition()), trackers, Instant::now(), &backlog)
            .map_err(|e| PipelineError::Setup { pipeline: self.name.clone(), message: format!("event_time.column: {e}") })?;
        for row in &late {
            let record = &records[row.record];
            tracing::debug!(topic = record.topic(), partition = record.partition(), offset = record.offset(), time = row.event_ms, mark = row.mark_ms, "late record");
        }
        if let Some(ms) = current {
            self.stats.watermark_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
        }
        Ok((current, late))
    }

    /// Follows assignment and revocation (both modes): newly assigned
    /// partitions hold the watermark until they deliver data or are idle;
    /// revoked ones stop counting. A (re)assigned partition starts from the
    /// group's committed offset, so it needs no rewind, and this process's
    /// record of what it committed there is dropped.
    pub(super) fn follow_assignment(&mut self, revoked: &std::collections::HashSet<(String, i32)>) {
        let now = Instant::now();
        let assigned = self.consumer.context().take_assigned();
        if let Some(watermarks) = &mut self.watermarks {
            watermarks.forget(revoked.iter().cloned());
            for (topic, partition) in &assigned {
                watermarks.expect(topic, *partition, now);
            }
        }
        if let Some(tasks) = &mut self.tasks {
            tasks.expect(&assigned, now);
        }
        for key in revoked.iter().chain(&assigned) {
            self.consumed.remove(key);
            self.started_at.remove(key);
            self.unpositioned.remove(key);
        }
        if !assigned.is_empty() {
            // Another owner may have moved these offsets since this process
            // last committed them: until it commits them again, rewinds ask
            // the group, and a revoke commits nothing for them.
            let mut committed = self.stats.committed.lock().unwrap_or_else(|e| e.into_inner());
            for key in &assigned {
                committed.remove(key);
            }
        }
    }

    /// Notes how far each partition was consumed (for
    /// [`source::ConsumerBacklog`]) and where each started since its
    /// assignment (for rewinds).
    pub(super) fn note_delivered(&mut self, records: &[OwnedMessage]) {
        // Records of one partition come in runs: one map update per run.
        let mut runs: Vec<(&str, i32, i64, i64)> = Vec::new();
        for record in records {
            match runs.last_mut() {
                Some((topic, partition, _, next)) if *topic == record.topic() && *partition == record.partition() => *next = (*next).max(record.offset() + 1),
                _ => runs.push((record.topic(), record.partition(), record.offset(), record.offset() + 1)),
            }
        }
        for (topic, partition, first, next) in runs {
            let consumed = self.consumed.entry((topic.to_owned(), partition)).or_insert(next);
            *consumed = (*consumed).max(next);
            self.started_at.entry((topic.to_owned(), partition)).or_insert(first);
        }
    }
}
