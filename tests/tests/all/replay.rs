//! Event time on backlogs, deterministically: the seed jobs' inputs, already
//! in their topics when the pipeline starts, replayed in-process (no broker)
//! through the pipeline's decoder, its event-time step
//! (`weir::pipeline::watermark::split_late`, the function the worker calls)
//! and the real aggregate guests, under many random partition interleavings,
//! fetch sizes and fetch delays (some longer than the idle timeout), with one
//! watermark for the pipeline (no `state`) and one per task (`state`). Every
//! run is compared with the batch computation of the same job
//! (weir_tests::seeds): exactly the records beyond the allowed lateness in
//! partition order are late, every final window equals the batch value, every
//! window the watermark passed is final, alerts go to exactly the planted users.

use super::support::operator;
use rdkafka::message::Timestamp;
use rdkafka::message::OwnedMessage;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use weir::operator::Chain;
use weir::pipeline::decode::RecordDecoder;
use weir::pipeline::watermark::{Backlog, Trackers, Watermarks, split_late};
use weir::scenario::{self, Event};
use weir_tests::guests;
use weir_tests::seeds::{self, Input, assert_close};

const PARTITIONS: i32 = 4;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the pipeline keeps its watermark.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// No `state`: one watermark and one chain for the whole pipeline.
    Shared,
    /// With `state`: one watermark and one chain per task (partition number).
    PerTask,
}

/// A seed job: its guest and the parameters of its batch computation.
struct Job {
    schema: &'static str,
    guest: &'static str,
    config: &'static str,
    lateness_ms: i64,
    key: &'static str,
    amount: &'static str,
    distinct: &'static [&'static str],
    size_ms: i64,
    slide_ms: i64,
}

const ORDERS: Job = Job {
    schema: scenario::ORDER_SCHEMA,
    guest: guests::ORDER_REVENUE,
    config: "{}",
    lateness_ms: 600_000,
    key: "processing_center",
    amount: "total_amount",
    distinct: &["customer_id"],
    size_ms: 3_600_000,
    slide_ms: 3_600_000,
};

const FRAUD: Job = Job {
    schema: scenario::TRANSACTION_SCHEMA,
    guest: guests::FRAUD_DETECTOR,
    config: r#"{"emit":"all"}"#,
    lateness_ms: 1_800_000,
    key: "user_id",
    amount: "amount",
    distinct: &["merchant_id", "location", "device_id"],
    size_ms: 300_000,
    slide_ms: 60_000,
};

/// A small deterministic generator (xorshift), seeded per run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Caught up on exactly the partitions whose queue is empty.
struct Queues<'a>(&'a HashMap<(String, i32), std::collections::VecDeque<usize>>);

impl Backlog for Queues<'_> {
    fn caught_up(&self, topic: &str, partition: i32) -> bool {
        self.0.get(&(topic.to_owned(), partition)).is_none_or(|q| q.is_empty())
    }
}

/// What one replay produced.
struct Replay {
    /// JSON output rows, in order.
    outputs: Vec<Vec<u8>>,
    /// Input indexes taken out as late.
    late: BTreeSet<usize>,
    /// The last watermark each chain ran with (key: task, or 0 for the pipeline).
    seen: BTreeMap<i32, i64>,
}

fn decoder(schema: &str) -> RecordDecoder {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), schema).unwrap();
    let format = weir::config::FormatConfig::Json { schema: dir.path().join("schema.json"), decode: Default::default() };
    RecordDecoder::new(&format).unwrap()
}

fn output_config() -> weir::config::OutputConfig {
    toml::from_str(r#"topic = "out"
key_column = "result_key""#).unwrap()
}

/// Replays `events` (all in their topics before the start) in an order
/// drawn from `seed`.
fn replay(job: &Job, events: &[Event], mode: Mode, seed: u64) -> Replay {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let decoder = decoder(job.schema);
    let template = Chain::new(vec![operator(job.guest, job.config)]);
    let output = output_config();
    let mut queues: HashMap<(String, i32), std::collections::VecDeque<usize>> = HashMap::new();
    let mut offsets: Vec<i64> = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let queue = queues.entry((event.topic.to_owned(), event.partition)).or_default();
        offsets.push(queue.len() as i64);
        queue.push_back(index);
    }
    // Every partition of every topic is assigned, also those that stay empty.
    let topics: BTreeSet<&str> = events.iter().map(|e| e.topic).collect();
    for topic in &topics {
        for partition in 0..PARTITIONS {
            queues.entry((topic.to_string(), partition)).or_default();
        }
    }
    let mut now = Instant::now();
    let watermarks = || Watermarks::new(job.lateness_ms, IDLE_TIMEOUT);
    let (mut trackers, mut chains): (Box<dyn Trackers>, BTreeMap<i32, Chain>) = match mode {
        Mode::Shared => {
            let mut shared = watermarks();
            for (topic, partition) in queues.keys() {
                shared.expect(topic, *partition, now);
            }
            (Box::new(shared), [(0, template.fresh().unwrap())].into())
        }
        Mode::PerTask => {
            let mut tasks: BTreeMap<i32, Watermarks> = BTreeMap::new();
            for (topic, partition) in queues.keys() {
                tasks.entry(*partition).or_insert_with(watermarks).expect(topic, *partition, now);
            }
            (Box::new(tasks), (0..PARTITIONS).map(|t| (t, template.fresh().unwrap())).collect())
        }
    };
    let mut replay = Replay { outputs: Vec::new(), late: BTreeSet::new(), seen: BTreeMap::new() };
    let keys: Vec<(String, i32)> = { let mut k: Vec<_> = queues.keys().cloned().collect(); k.sort(); k };
    loop {
        // One batch: fetches of random sizes from random partitions.
        let target = 1 + rng.below(600) as usize;
        let mut batch: Vec<usize> = Vec::new();
        while batch.len() < target {
            let ready: Vec<&(String, i32)> = keys.iter().filter(|k| !queues[*k].is_empty()).collect();
            if ready.is_empty() {
                break;
            }
            let queue = queues.get_mut(ready[rng.below(ready.len() as u64) as usize]).unwrap();
            let fetch = 1 + rng.below(150) as usize;
            batch.extend(queue.drain(..fetch.min(queue.len())));
        }
        if batch.is_empty() {
            break;
        }
        // Fetch delays; one batch in eight comes after more than the idle
        // timeout (a slow broker, a partition far behind).
        now += if rng.below(8) == 0 { IDLE_TIMEOUT * 2 } else { Duration::from_millis(rng.below(2_000)) };
        let records: Vec<OwnedMessage> = batch
            .iter()
            .map(|&i| {
                let e = &events[i];
                OwnedMessage::new(Some(e.value.clone().into_bytes()), Some(e.key.clone().into_bytes()), e.topic.to_owned(), Timestamp::NotAvailable, e.partition, offsets[i], None)
            })
            .collect();
        let mut decoded = decoder.decode(&records).unwrap();
        assert!(decoded.failed.is_empty(), "generated records decode");
        let (watermark, late) = split_late(&mut decoded, "timestamp", |r| (events[batch[r]].topic, events[batch[r]].partition), trackers.as_mut(), now, &Queues(&queues)).unwrap();
        replay.late.extend(late.iter().map(|l| batch[l.record]));
        let mut parts: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
        for (row, &record) in decoded.record_of_row.iter().enumerate() {
            let task = if mode == Mode::Shared { 0 } else { events[batch[record]].partition };
            parts.entry(task).or_default().push(row as u32);
        }
        for (task, rows) in parts {
            let rows = arrow_array::UInt32Array::from(rows);
            let part = arrow_select::take::take_record_batch(&decoded.batch, &rows).unwrap();
            let watermark = match mode {
                Mode::Shared => watermark,
                Mode::PerTask => trackers.tracker(task).and_then(|w| w.peek()),
            };
            let result = chains.get_mut(&task).unwrap().run(part, watermark).unwrap();
            if let Some(w) = watermark {
                replay.seen.insert(task, w);
            }
            for batch in &result.batches {
                for record in weir::pipeline::output::encode(batch, None, &output, &|_| None).unwrap() {
                    replay.outputs.push(record.value.to_vec());
                }
            }
        }
    }
    replay
}

/// Panics unless `replay` equals the batch computation of `job` over `events`.
fn check(job: &Job, events: &[Event], mode: Mode, seed: u64, replay: &Replay) {
    let context = format!("{mode:?} seed {seed}");
    let inputs: Vec<Input> = events.iter().map(|e| (e.topic.to_owned(), e.partition, e.value.clone())).collect();
    let expected_late = seeds::late_inputs(&inputs, job.lateness_ms);
    assert!(!expected_late.is_empty(), "the generator plants late records");
    let wrongly_late: Vec<&usize> = replay.late.difference(&expected_late).take(5).collect();
    let missed: Vec<&usize> = expected_late.difference(&replay.late).take(5).collect();
    assert!(
        wrongly_late.is_empty() && missed.is_empty(),
        "{context}: late records differ from the partition-order rule: {} late, {} expected; valid records taken as late (first inputs) {wrongly_late:?}; late ones missed {missed:?}",
        replay.late.len(),
        expected_late.len()
    );
    let all = seeds::all_windows(&inputs, job.lateness_ms, job.key, job.amount, job.distinct, job.size_ms, job.slide_ms);
    let watermark_of = |partition: i32| replay.seen.get(&if mode == Mode::Shared { 0 } else { partition }).copied().unwrap_or(i64::MIN);
    let expected: BTreeMap<&(String, i64), &seeds::Expected> =
        all.iter().filter(|((_, start), (_, partition))| start + job.size_ms <= watermark_of(*partition)).map(|(k, (e, _))| (k, e)).collect();
    assert!(expected.len() >= 10, "{context}: only {} windows closed", expected.len());
    let rows = seeds::final_rows(replay.outputs.iter().cloned());
    let extra: Vec<_> = rows.keys().filter(|k| !expected.contains_key(k)).take(5).collect();
    let missing: Vec<_> = expected.keys().filter(|k| !rows.contains_key(**k)).take(5).collect();
    assert!(extra.is_empty() && missing.is_empty(), "{context}: final windows differ: {} rows, {} expected; extra {extra:?}, missing {missing:?}", rows.len(), expected.len());
    for (key, want) in expected {
        let row = &rows[key];
        let (count, total) = if job.key == "user_id" { ("tx_count", "total_amount") } else { ("order_count", "revenue") };
        assert_eq!(row[count].as_u64(), Some(want.count), "{context}: {key:?} {count}");
        assert_close(&format!("{context}: {key:?} {total}"), row[total].as_f64().unwrap(), want.total);
        if job.key == "user_id" {
            let distinct: Vec<u64> = ["distinct_merchants", "distinct_locations", "distinct_devices"].iter().map(|c| row[*c].as_u64().unwrap()).collect();
            assert_eq!(distinct, want.distinct, "{context}: {key:?} distinct merchants/locations/devices");
            let alert = want.count > 10 || want.total > 5000.0 || want.distinct[0] > 5 || want.distinct[1] > 3 || want.distinct[2] > 2;
            assert_eq!(row["alert"].as_bool(), Some(alert), "{context}: {key:?} alert");
        } else {
            let (unique, exact) = (row["unique_customers"].as_u64().unwrap() as f64, want.distinct[0] as f64);
            assert!((unique - exact).abs() <= 0.02 * exact, "{context}: {key:?} unique_customers {unique} vs exact {exact}");
        }
    }
}

/// Seeds per job and mode: each is a different interleaving.
const SEEDS: u64 = 6;

#[test]
fn order_revenue_on_a_backlog_equals_the_batch_computation_in_every_interleaving() {
    // 4 hours of event time over two co-partitioned topics, 4 partitions.
    let events = scenario::orders(14_400, PARTITIONS);
    for mode in [Mode::Shared, Mode::PerTask] {
        for seed in 0..SEEDS {
            let replay = replay(&ORDERS, &events, mode, seed);
            check(&ORDERS, &events, mode, seed, &replay);
        }
    }
}

#[test]
fn fraud_alerts_on_a_backlog_equal_the_batch_computation_in_every_interleaving() {
    // 3 hours of transactions of 40 users, 8 of them planted fraud.
    let stream = scenario::fraud(40, 8, 180, PARTITIONS);
    for mode in [Mode::Shared, Mode::PerTask] {
        for seed in 0..SEEDS {
            let replay = replay(&FRAUD, &stream.events, mode, seed);
            check(&FRAUD, &stream.events, mode, seed, &replay);
            let alerted: BTreeSet<String> = replay
                .outputs
                .iter()
                .map(|b| serde_json::from_slice::<serde_json::Value>(b).unwrap())
                .filter(|v| v["alert"].as_bool() == Some(true))
                .map(|v| v["user_id"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(alerted, stream.fraud_users, "{mode:?} seed {seed}: alerted users must be exactly the planted ones");
        }
    }
}
