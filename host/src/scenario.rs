//! Generators for the seed pipelines (`weir demo --scenario orders|fraud`,
//! the windowing tests and benchmarks): deterministic, realistic event
//! streams with out-of-order arrival inside the allowed lateness, a few
//! events far behind it (late), and, for fraud, planted fraud patterns.
//!
//! Events are keyed and explicitly partitioned by their key (FNV-1a modulo
//! the partition count), the same way on every topic, so the topics are
//! co-partitioned as stateful pipelines require.

use std::collections::BTreeSet;

/// Event time of the first generated event: 2024-11-19T07:06:40Z.
pub const BASE_MS: i64 = 1_732_000_000_000;

/// One generated record.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Topic to produce to.
    pub topic: &'static str,
    /// Partition (by key).
    pub partition: i32,
    /// Record key.
    pub key: String,
    /// JSON value.
    pub value: String,
    /// Event time (Unix ms), also in the value's `timestamp`.
    pub event_ms: i64,
    /// Whether it was generated behind the allowed lateness (a late event).
    pub late: bool,
}

/// The partition of `key` among `partitions` (FNV-1a; stable everywhere).
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.as_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % partitions.max(1) as u64) as i32
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Processing centers of the order scenario.
pub const CENTERS: [&str; 5] = ["berlin", "chicago", "singapore", "sao-paulo", "lagos"];

/// Orders at or above this amount go to `high-value-orders`, the rest to `regular-orders`.
pub const HIGH_VALUE_AMOUNT: f64 = 1000.0;

/// Topics of the order scenario.
pub const ORDER_TOPICS: [&str; 2] = ["high-value-orders", "regular-orders"];

/// `count` orders over `count` seconds of event time, keyed by
/// processing center: arrival up to 5 minutes out of order; from the first
/// fifth on, every 97th order is 3 hours late (beyond a 10-minute lateness).
pub fn orders(count: u64, partitions: i32) -> Vec<Event> {
    let mut rng = Rng(0x5eed_0001);
    (0..count)
        .map(|i| {
            let clock = BASE_MS + i as i64 * 1000;
            let late = i >= count / 5 && i % 97 == 0;
            let event_ms = if late { clock - 3 * 3_600_000 } else { clock - rng.below(300_000) as i64 };
            let center = CENTERS[rng.below(CENTERS.len() as u64) as usize];
            let customer = format!("c-{:05}", rng.below(2000));
            let high = rng.below(10) == 0;
            let cents = if high { 100_000 + rng.below(400_000) } else { 500 + rng.below(99_400) };
            let amount = cents as f64 / 100.0;
            let topic = if amount >= HIGH_VALUE_AMOUNT { ORDER_TOPICS[0] } else { ORDER_TOPICS[1] };
            let value = format!(
                r#"{{"order_id":"o-{i:09}","customer_id":"{customer}","processing_center":"{center}","total_amount":{amount},"quantity":{},"timestamp":{event_ms},"items":[]}}"#,
                rng.below(9) + 1
            );
            Event { topic, partition: partition_of(center, partitions), key: center.to_owned(), value, event_ms, late }
        })
        .collect()
}

/// JSON schema of the order events (weir's schema file format).
pub const ORDER_SCHEMA: &str = r#"{"fields":[
  {"name":"order_id","type":"utf8","nullable":false},
  {"name":"customer_id","type":"utf8","nullable":false},
  {"name":"processing_center","type":"utf8"},
  {"name":"total_amount","type":"float64"},
  {"name":"quantity","type":"int32"},
  {"name":"timestamp","type":"timestamp","unit":"ms","timezone":"UTC","nullable":false},
  {"name":"items","type":"list<utf8>"}
]}"#;

/// Topic of the fraud scenario.
pub const TRANSACTIONS_TOPIC: &str = "transactions";

/// JSON schema of the transactions.
pub const TRANSACTION_SCHEMA: &str = r#"{"fields":[
  {"name":"tx_id","type":"utf8","nullable":false},
  {"name":"user_id","type":"utf8","nullable":false},
  {"name":"amount","type":"float64"},
  {"name":"merchant_id","type":"utf8"},
  {"name":"location","type":"utf8"},
  {"name":"device_id","type":"utf8"},
  {"name":"timestamp","type":"timestamp","unit":"ms","timezone":"UTC","nullable":false}
]}"#;

/// The fraud patterns planted, one per fraud user in turn.
pub const FRAUD_PATTERNS: [&str; 5] = ["tx_count", "total_amount", "merchants", "locations", "devices"];

/// Generated transactions and the users whose behaviour must raise alerts.
pub struct FraudStream {
    /// Transactions in production order.
    pub events: Vec<Event>,
    /// Users with a planted pattern (`f-..`); every other user is clean.
    pub fraud_users: BTreeSet<String>,
    /// Per planted user, the transaction (`tx_id`) whose arrival crosses the
    /// threshold: an alert latency is measured from it.
    pub triggers: std::collections::BTreeMap<String, String>,
}

/// `users` clean users paying every 2 minutes (±30 s arrival jitter, up to
/// €300, their 3 usual merchants, one location, one device) for `minutes` of
/// event time, plus `fraud_users` users each with one planted pattern (a
/// burst of 15 payments, €6,300 in two minutes, 7 merchants, 5 locations or
/// 4 devices within 4 minutes). From the first fifth on, every 113th clean
/// payment arrives 2 hours late (beyond a 30-minute lateness).
pub fn fraud(users: u64, fraud_users: u64, minutes: i64, partitions: i32) -> FraudStream {
    let mut rng = Rng(0x5eed_0002);
    // (arrival clock, event time, user, amount, merchant, location, device)
    let mut raw: Vec<(i64, i64, String, f64, String, String, String)> = Vec::new();
    let span = minutes * 60_000;
    for u in 0..users {
        let user = format!("u-{u:05}");
        let offset = (u as i64 * 7_919) % 120_000;
        let mut clock = BASE_MS + offset;
        while clock < BASE_MS + span {
            let event_ms = clock - rng.below(30_000) as i64;
            let amount = (500 + rng.below(29_500)) as f64 / 100.0;
            let merchant = format!("m-{:04}", (u * 7 + rng.below(3)) % 1000);
            raw.push((clock, event_ms, user.clone(), amount, merchant, format!("loc-{:03}", u % 200), format!("d-{u:05}")));
            clock += 120_000;
        }
    }
    let mut planted = BTreeSet::new();
    let mut trigger_index = std::collections::BTreeMap::new();
    for f in 0..fraud_users {
        let user = format!("f-{f:03}");
        planted.insert(user.clone());
        let start = BASE_MS + span / 4 + (f as i64 * 97_000) % (span / 2).max(1);
        let pattern = FRAUD_PATTERNS[(f % FRAUD_PATTERNS.len() as u64) as usize];
        // (payments, spacing, index of the payment that crosses the threshold)
        let (n, gap, trigger) = match pattern {
            "tx_count" => (15, 10_000, 10),
            "total_amount" => (3, 40_000, 2),
            "merchants" => (7, 30_000, 5),
            "locations" => (5, 45_000, 3),
            _ => (4, 60_000, 2),
        };
        trigger_index.insert(user.clone(), trigger);
        for k in 0..n {
            let t = start + k as i64 * gap;
            let amount = if pattern == "total_amount" { 2100.0 } else { 20.0 + k as f64 };
            let merchant = if pattern == "merchants" { format!("m-x{k}") } else { "m-0001".to_owned() };
            let location = if pattern == "locations" { format!("loc-x{k}") } else { "loc-000".to_owned() };
            let device = if pattern == "devices" { format!("d-x{k}") } else { format!("d-{user}") };
            raw.push((t, t, user.clone(), amount, merchant, location, device));
        }
    }
    raw.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    let total = raw.len();
    let mut seen: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut triggers = std::collections::BTreeMap::new();
    for (i, (_, _, user, ..)) in raw.iter().enumerate() {
        if let Some(&trigger) = trigger_index.get(user) {
            let k = seen.entry(user.clone()).or_default();
            if *k == trigger {
                triggers.insert(user.clone(), format!("t-{i:08}"));
            }
            *k += 1;
        }
    }
    let events = raw
        .into_iter()
        .enumerate()
        .map(|(i, (clock, event_ms, user, amount, merchant, location, device))| {
            let late = i >= total / 5 && i % 113 == 0 && user.starts_with("u-");
            let event_ms = if late { clock - 2 * 3_600_000 } else { event_ms };
            let value = format!(
                r#"{{"tx_id":"t-{i:08}","user_id":"{user}","amount":{amount},"merchant_id":"{merchant}","location":"{location}","device_id":"{device}","timestamp":{event_ms}}}"#
            );
            Event { topic: TRANSACTIONS_TOPIC, partition: partition_of(&user, partitions), key: user, value, event_ms, late }
        })
        .collect();
    FraudStream { events, fraud_users: planted, triggers }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_and_plant_what_they_say() {
        assert_eq!(orders(1000, 3), orders(1000, 3));
        let o = orders(1000, 3);
        assert!(o.iter().any(|e| e.topic == ORDER_TOPICS[0]) && o.iter().any(|e| e.topic == ORDER_TOPICS[1]));
        assert_eq!(o.iter().filter(|e| e.late).count(), (200..1000).filter(|i| i % 97 == 0).count());
        for e in &o {
            assert_eq!(e.partition, partition_of(&e.key, 3));
        }
        let f = fraud(50, 5, 30, 3);
        assert_eq!(f.fraud_users.len(), 5);
        assert_eq!(f.triggers.keys().collect::<Vec<_>>(), f.fraud_users.iter().collect::<Vec<_>>());
        assert!(f.events.iter().any(|e| e.late));
        assert!(f.events.iter().all(|e| !e.late || e.key.starts_with("u-")));
    }
}
