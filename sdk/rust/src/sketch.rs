//! Approximate distinct counting for aggregate state: a HyperLogLog sketch
//! (Flajolet et al. 2007, with the small-range linear-counting correction),
//! small enough to live in a window accumulator and to merge when windows
//! or sessions combine. Written here rather than taken from a crate: the
//! guest needs a serde-serialisable, mergeable sketch with a stable hash
//! (snapshots move between processes and versions), in under 100 lines.

use serde::{Deserialize, Serialize};

/// A HyperLogLog sketch with 2^`precision` registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HyperLogLog {
    precision: u8,
    /// One byte per register, hex-encoded in snapshots.
    #[serde(with = "hex_registers")]
    registers: Vec<u8>,
}

impl Default for HyperLogLog {
    /// Precision 12: 4096 registers, about 1.6% standard error (exact-ish
    /// below a few thousand values thanks to linear counting).
    fn default() -> Self {
        HyperLogLog::new(12)
    }
}

impl HyperLogLog {
    /// An empty sketch; `precision` is clamped to 4..=16.
    pub fn new(precision: u8) -> HyperLogLog {
        let precision = precision.clamp(4, 16);
        HyperLogLog { precision, registers: vec![0; 1 << precision] }
    }

    /// Adds a value (its bytes).
    pub fn insert(&mut self, value: &[u8]) {
        self.insert_hash(hash64(value));
    }

    /// Adds a value by its [`hash64`] (hash once, insert into several windows).
    pub fn insert_hash(&mut self, hash: u64) {
        let index = (hash >> (64 - self.precision)) as usize;
        let rest = (hash << self.precision) | (1 << (self.precision - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        let register = &mut self.registers[index];
        *register = (*register).max(rank);
    }

    /// Folds another sketch of the same precision in (a union).
    pub fn merge(&mut self, other: &HyperLogLog) {
        if other.precision != self.precision {
            return;
        }
        for (mine, theirs) in self.registers.iter_mut().zip(&other.registers) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// The estimated number of distinct values inserted.
    pub fn estimate(&self) -> u64 {
        let m = self.registers.len() as f64;
        let alpha = match self.registers.len() {
            16 => 0.673,
            32 => 0.697,
            64 => 0.709,
            _ => 0.7213 / (1.0 + 1.079 / m),
        };
        let sum: f64 = self.registers.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        let estimate = if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw };
        estimate.round() as u64
    }
}

/// FNV-1a over the bytes, then the SplitMix64 finaliser for avalanche:
/// stable across processes, platforms and releases (snapshots rely on it).
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

mod hex_registers {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(registers: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let text: String = registers.iter().flat_map(|b| [DIGITS[(b >> 4) as usize] as char, DIGITS[(b & 15) as usize] as char]).collect();
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        let digit = |c: u8| (c as char).to_digit(16).ok_or_else(|| serde::de::Error::custom("registers: not hex"));
        text.as_bytes().chunks(2).map(|pair| Ok((digit(pair[0])? << 4 | digit(*pair.get(1).unwrap_or(&b'0'))?) as u8)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_within_two_percent_and_merges_as_a_union() {
        for n in [10u64, 1_000, 20_000, 200_000] {
            let mut sketch = HyperLogLog::default();
            for i in 0..n {
                sketch.insert(format!("customer-{i}").as_bytes());
                sketch.insert(format!("customer-{i}").as_bytes());
            }
            let error = (sketch.estimate() as f64 - n as f64).abs() / n as f64;
            assert!(error < 0.02 || (n <= 1000 && error < 0.005), "n = {n}: estimate {} ({:.2}%)", sketch.estimate(), error * 100.0);
        }
        let (mut a, mut b) = (HyperLogLog::default(), HyperLogLog::default());
        (0..5000).for_each(|i: u32| a.insert(&i.to_le_bytes()));
        (2500..7500).for_each(|i: u32| b.insert(&i.to_le_bytes()));
        a.merge(&b);
        let estimate = a.estimate() as f64;
        assert!((estimate - 7500.0).abs() / 7500.0 < 0.02, "union estimate {estimate}");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<HyperLogLog>(&json).unwrap(), a);
    }
}
