//! The raw rdkafka passthrough: consume, batch like weir (10k records or
//! the same wait), produce every record unchanged, then commit the batch's
//! offsets: after the acknowledgements under at-least-once, inside the
//! batch's transaction (`send_offsets_to_transaction`) under exactly-once.
//! weir's delivery discipline with no decoding and no Wasm: the floor.

use super::{Error, Guarantee};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A passthrough running on its own thread.
pub struct Passthrough {
    stop: Arc<AtomicBool>,
    first: Arc<OnceLock<Instant>>,
    ready: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Passthrough {
    /// Starts consuming `input` in `group` and writing to `output`.
    pub fn start(bootstrap: &str, input: &str, output: &str, group: &str, guarantee: Guarantee, batch_records: usize, batch_wait: Duration) -> Passthrough {
        let stop = Arc::new(AtomicBool::new(false));
        let first = Arc::new(OnceLock::new());
        let ready = Arc::new(AtomicBool::new(false));
        let (bootstrap, input, output, group) = (bootstrap.to_owned(), input.to_owned(), output.to_owned(), group.to_owned());
        let flags = (stop.clone(), first.clone(), ready.clone());
        let thread = std::thread::spawn(move || {
            let (stop, first, ready) = flags;
            run(&bootstrap, &input, &output, &group, guarantee, batch_records, batch_wait, &stop, &first, &ready).map_err(|e| e.to_string())
        });
        Passthrough { stop, first, ready, thread: Some(thread) }
    }

    /// When the first record was consumed.
    pub fn first_record(&self) -> Option<Instant> {
        self.first.get().copied()
    }

    /// Whether the consumer has its partitions.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Why the thread ended early, if it did.
    pub fn failure(&mut self) -> Option<String> {
        if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            let result = self.thread.take()?.join();
            return Some(match result {
                Ok(Ok(())) => "raw passthrough stopped".into(),
                Ok(Err(e)) => format!("raw passthrough failed: {e}"),
                Err(_) => "raw passthrough panicked".into(),
            });
        }
        None
    }

    /// Stops after the batch in flight.
    pub fn stop(mut self) -> Result<(), Error> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => Ok(result?),
            Some(Err(_)) => Err("raw passthrough panicked".into()),
            None => Ok(()),
        }
    }
}

impl Drop for Passthrough {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    bootstrap: &str,
    input: &str,
    output: &str,
    group: &str,
    guarantee: Guarantee,
    batch_records: usize,
    batch_wait: Duration,
    stop: &AtomicBool,
    first: &OnceLock<Instant>,
    ready: &AtomicBool,
) -> Result<(), Error> {
    let exactly_once = guarantee == Guarantee::ExactlyOnce;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", if exactly_once { "read_committed" } else { "read_uncommitted" })
        .create()?;
    consumer.subscribe(&[input])?;
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("acks", "all").set("enable.idempotence", "true").set("linger.ms", "5");
    if exactly_once {
        config.set("transactional.id", group);
    }
    let producer: FutureProducer = config.create()?;
    let timeout = Duration::from_secs(30);
    if exactly_once {
        producer.init_transactions(timeout)?;
    }
    while !stop.load(Ordering::Acquire) {
        let Some(message) = consumer.poll(Duration::from_millis(50)) else {
            if !ready.load(Ordering::Relaxed) && consumer.assignment().is_ok_and(|a| a.count() > 0) {
                ready.store(true, Ordering::Release);
            }
            continue;
        };
        ready.store(true, Ordering::Release);
        first.get_or_init(Instant::now);
        let mut batch: Vec<OwnedMessage> = vec![message?.detach()];
        let deadline = Instant::now() + batch_wait;
        while batch.len() < batch_records {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match consumer.poll(left) {
                Some(message) => batch.push(message?.detach()),
                None => break,
            }
        }
        if exactly_once {
            producer.begin_transaction()?;
        }
        let mut deliveries = Vec::with_capacity(batch.len());
        for m in &batch {
            let mut record = FutureRecord::<[u8], [u8]>::to(output).payload(m.payload().unwrap_or_default());
            if let Some(key) = m.key() {
                record = record.key(key);
            }
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((_, back)) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for m in &batch {
            let entry = next.entry(m.partition()).or_insert(0);
            *entry = (*entry).max(m.offset() + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in next {
            offsets.add_partition_offset(input, partition, Offset::Offset(offset))?;
        }
        if exactly_once {
            let metadata = consumer.group_metadata().ok_or("no consumer group metadata")?;
            producer.send_offsets_to_transaction(&offsets, &metadata, timeout)?;
            producer.commit_transaction(timeout)?;
        }
        for result in futures::executor::block_on(futures::future::join_all(deliveries)) {
            result.map_err(|_| "delivery cancelled")?.map_err(|(e, _)| e)?;
        }
        if !exactly_once {
            consumer.commit(&offsets, CommitMode::Async)?;
        }
    }
    Ok(())
}
