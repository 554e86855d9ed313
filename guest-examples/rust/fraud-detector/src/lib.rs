//! Aggregate: the seed's per-user fraud detection. Per `user_id`, 5-minute
//! event-time windows sliding by 1 minute: transaction count, total amount,
//! distinct merchants, locations and devices. A window alerts when
//! tx_count > 10, total_amount > 5000, merchants > 5, locations > 3 or
//! devices > 2 (thresholds configurable).
//!
//! Emission: an alert row as soon as a window crosses a threshold (once per
//! window and user, `is_final = false`: alert latency does not wait for the
//! allowed lateness), and the final row of each window when the watermark
//! passes its end (`emit = "all"`: every window; `"alerts"`: alerting ones).
//! `result_key` (user/start) is the same for every emission of a window.
//!
//! Config (all optional): `{"key": "user_id", "time": "timestamp", "amount": "amount",
//!   "merchant": "merchant_id", "location": "location", "device": "device_id",
//!   "size_ms": 300000, "slide_ms": 60000, "emit": "alerts",
//!   "max_tx_count": 10, "max_total_amount": 5000.0, "max_merchants": 5,
//!   "max_locations": 3, "max_devices": 2, "keyed": true}`
//!
//! State: the SDK's hopping windows, kept as 1-minute panes (each payment
//! is held once, not in each of its five windows); checkpointed one entry
//! per user, only the users changed since the last checkpoint (`"keyed":
//! false`: the whole state per checkpoint, for comparisons).
//!
//! Build: cargo build --release --target wasm32-wasip2 -p fraud-detector

use serde::{Deserialize, Serialize};
use weir_sdk::sketch::hash64;
use weir_sdk::state::KeyedState;
use weir_sdk::window::{Accumulator, Window, WindowSpec, Windows, event_times_ms};
use weir_sdk::{Aggregate, Batch, Column, DataType, Error, Field, StringBuilder, TimeUnit};

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Emit {
    /// Final rows of every window.
    All,
    /// Final rows of alerting windows only.
    Alerts,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    key: String,
    time: String,
    amount: String,
    merchant: String,
    location: String,
    device: String,
    size_ms: i64,
    slide_ms: i64,
    emit: Emit,
    max_tx_count: u64,
    max_total_amount: f64,
    max_merchants: usize,
    max_locations: usize,
    max_devices: usize,
    /// Checkpoint the windows key by key (default); false: whole snapshots,
    /// as before contract 0.1.1 (for comparisons).
    keyed: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            key: "user_id".into(),
            time: "timestamp".into(),
            amount: "amount".into(),
            merchant: "merchant_id".into(),
            location: "location".into(),
            device: "device_id".into(),
            size_ms: 300_000,
            slide_ms: 60_000,
            emit: Emit::Alerts,
            max_tx_count: 10,
            max_total_amount: 5000.0,
            max_merchants: 5,
            max_locations: 3,
            max_devices: 2,
            keyed: true,
        }
    }
}

/// A small set of 64-bit hashes as a sorted list: a window holds a handful,
/// and merging panes copies and merges them on every read, which a list
/// does without the allocations of a tree. Serialised like a set (a JSON
/// array, a postcard sequence), so states written with a `BTreeSet` read;
/// sorted when read (another SDK's snapshot may list them in any order).
#[derive(Default, Clone, Serialize, Deserialize)]
#[serde(from = "Vec<u64>")]
struct Distinct(Vec<u64>);

impl From<Vec<u64>> for Distinct {
    fn from(mut values: Vec<u64>) -> Self {
        values.sort_unstable();
        values.dedup();
        Distinct(values)
    }
}

impl Distinct {
    fn insert(&mut self, value: u64) {
        if let Err(i) = self.0.binary_search(&value) {
            self.0.insert(i, value);
        }
    }

    fn union(&mut self, other: &Distinct) {
        for &value in &other.0 {
            self.insert(value);
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// One window of one user. Distinct values are kept as 64-bit hashes
/// (exact for the handful a user has in 5 minutes).
#[derive(Default, Clone, Serialize, Deserialize)]
struct Activity {
    tx_count: u64,
    total_amount: f64,
    merchants: Distinct,
    locations: Distinct,
    devices: Distinct,
    /// Whether the early alert went out, in windows restored from a state
    /// written before the SDK kept hopping windows as panes (the window's
    /// mark says it since; the field stays so that state still decodes).
    alerted: bool,
}

impl Accumulator for Activity {
    /// (amount, merchant hash, location hash, device hash)
    type Row = (f64, u64, u64, u64);
    fn add(&mut self, &(amount, merchant, location, device): &Self::Row) {
        self.tx_count += 1;
        self.total_amount += amount;
        self.merchants.insert(merchant);
        self.locations.insert(location);
        self.devices.insert(device);
    }
    fn merge(&mut self, other: &Self) {
        self.tx_count += other.tx_count;
        self.total_amount += other.total_amount;
        self.merchants.union(&other.merchants);
        self.locations.union(&other.locations);
        self.devices.union(&other.devices);
        self.alerted |= other.alerted;
    }
    /// A whole snapshot (the layout the Python and JS detectors read too)
    /// carries the window's mark as the flag.
    fn marked(&mut self) {
        self.alerted = true;
    }
}

struct FraudDetector {
    config: Config,
    windows: Windows<String, Activity>,
}

impl FraudDetector {
    /// The thresholds an activity exceeds, comma-separated (empty: none).
    fn reasons(&self, a: &Activity) -> String {
        let c = &self.config;
        let mut reasons = Vec::new();
        if a.tx_count > c.max_tx_count {
            reasons.push("tx_count");
        }
        if a.total_amount > c.max_total_amount {
            reasons.push("total_amount");
        }
        if a.merchants.len() > c.max_merchants {
            reasons.push("merchants");
        }
        if a.locations.len() > c.max_locations {
            reasons.push("locations");
        }
        if a.devices.len() > c.max_devices {
            reasons.push("devices");
        }
        reasons.join(",")
    }
}

#[derive(Default)]
struct Rows {
    start: Vec<i64>,
    end: Vec<i64>,
    key: StringBuilder,
    tx_count: Vec<i64>,
    total: Vec<f64>,
    merchants: Vec<i64>,
    locations: Vec<i64>,
    devices: Vec<i64>,
    alert: Vec<Option<bool>>,
    reasons: StringBuilder,
    is_final: Vec<Option<bool>>,
    result_key: StringBuilder,
}

impl Rows {
    fn push(&mut self, window: &Window, key: &str, a: &Activity, reasons: &str, is_final: bool) {
        self.start.push(window.start_ms);
        self.end.push(window.end_ms);
        self.key.push_str(key);
        self.tx_count.push(a.tx_count as i64);
        self.total.push(a.total_amount);
        self.merchants.push(a.merchants.len() as i64);
        self.locations.push(a.locations.len() as i64);
        self.devices.push(a.devices.len() as i64);
        self.alert.push(Some(!reasons.is_empty()));
        self.reasons.push_str(reasons);
        self.is_final.push(Some(is_final));
        self.result_key.push_str(&format!("{key}/{}", window.start_ms));
    }

    fn finish(self, key_name: &str) -> Result<Batch, Error> {
        let utc = Some("UTC".to_owned());
        let ts = DataType::Timestamp { unit: TimeUnit::Millisecond, timezone: utc.clone() };
        let int = |name: &str| Field::new(name, DataType::Int64, false);
        Batch::new(
            vec![
                Field::new("window_start", ts.clone(), false),
                Field::new("window_end", ts, false),
                Field::new(key_name, DataType::Utf8, false),
                int("tx_count"),
                Field::new("total_amount", DataType::Float64, false),
                int("distinct_merchants"),
                int("distinct_locations"),
                int("distinct_devices"),
                Field::new("alert", DataType::Boolean, false),
                Field::new("reasons", DataType::Utf8, false),
                Field::new("is_final", DataType::Boolean, false),
                Field::new("result_key", DataType::Utf8, false),
            ],
            vec![
                Column::timestamps(self.start, None, TimeUnit::Millisecond, utc.clone())?,
                Column::timestamps(self.end, None, TimeUnit::Millisecond, utc)?,
                self.key.finish(),
                Column::from(self.tx_count),
                Column::from(self.total),
                Column::from(self.merchants),
                Column::from(self.locations),
                Column::from(self.devices),
                Column::from_bools(self.alert),
                self.reasons.finish(),
                Column::from_bools(self.is_final),
                self.result_key.finish(),
            ],
        )
    }
}

impl Aggregate for FraudDetector {
    type Config = Config;

    fn init(config: Config) -> Result<Self, Error> {
        let spec = WindowSpec::Hopping { size_ms: config.size_ms, slide_ms: config.slide_ms };
        spec.validate().map_err(Error::InvalidConfig)?;
        Ok(FraudDetector { config, windows: Windows::new(spec) })
    }

    fn reads(&self) -> Option<Vec<String>> {
        let c = &self.config;
        Some(vec![c.key.clone(), c.time.clone(), c.amount.clone(), c.merchant.clone(), c.location.clone(), c.device.clone()])
    }

    fn process(&mut self, batch: &Batch, watermark_ms: Option<i64>) -> Result<Vec<Batch>, Error> {
        let c = &self.config;
        let times = event_times_ms(batch.column(&c.time)?)?;
        let keys = batch.column(&c.key)?.utf8()?;
        let amount_column = batch.column(&c.amount)?;
        // Any numeric type (float64, float32, int32, int64); nulls add 0.
        let amounts = amount_column.as_f64_values()?;
        let (merchants, locations, devices) = (batch.column(&c.merchant)?.utf8()?, batch.column(&c.location)?.utf8()?, batch.column(&c.device)?.utf8()?);
        let hash = |s: Option<&str>| hash64(s.unwrap_or_default().as_bytes());
        let mut rows = Rows::default();
        for (row, time) in times.into_iter().enumerate() {
            let (Some(t), Some(key)) = (time, keys.get(row)) else { continue };
            // No lateness check here: the host took out the rows behind the
            // previous watermark; the others still belong to open windows.
            let amount = if amount_column.is_valid(row) { amounts[row] } else { 0.0 };
            let activity = (amount, hash(merchants.get(row)), hash(locations.get(row)), hash(devices.get(row)));
            let key = key.to_owned();
            self.windows.add(key.clone(), t, &activity);
            // Early alerts: each window of this row that now crosses a threshold, once.
            for window in self.windows.spec().assign(t) {
                if self.windows.is_marked(&key, &window) {
                    continue;
                }
                let Some(acc) = self.windows.get(&key, &window) else { continue };
                // `alerted`: a window restored from a state written before marks.
                let reasons = if acc.alerted { String::new() } else { self.reasons(&acc) };
                if !reasons.is_empty() {
                    rows.push(&window, &key, &acc, &reasons, false);
                    self.windows.mark(&key, &window);
                }
            }
        }
        if let Some(watermark) = watermark_ms {
            for (window, key, acc) in self.windows.close(watermark) {
                let reasons = self.reasons(&acc);
                if self.config.emit == Emit::All || !reasons.is_empty() {
                    rows.push(&window, &key, &acc, &reasons, true);
                }
            }
        }
        if rows.start.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![rows.finish(&self.config.key)?])
    }

    fn snapshot(&self) -> Result<Vec<u8>, Error> {
        Ok(self.windows.snapshot())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        self.windows = Windows::restore(state).map_err(Error::InvalidInput)?;
        Ok(())
    }

    /// Checkpoints store one entry per key, and only the keys that changed.
    fn keyed_state(&mut self) -> Option<&mut dyn KeyedState> {
        self.config.keyed.then_some(&mut self.windows as &mut dyn KeyedState)
    }
}

weir_sdk::export_aggregate!(FraudDetector);
