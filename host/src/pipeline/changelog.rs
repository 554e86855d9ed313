//! Keyed (incremental) aggregate state in the state topic. An aggregate that
//! exports `weir:operator/keyed-state` (contract 0.1.1) hands the host its
//! state as entries, and at each checkpoint only the entries changed or
//! removed since the previous one; each entry is a record of the compacted
//! state topic, next to the task's checkpoint record (`task/<n>`, which
//! holds the offsets and, for keyed operators, no bytes).
//!
//! A checkpoint's entry records are produced before its `task/<n>` record,
//! and at least once they are not in a transaction: a crash can leave a
//! checkpoint's first entries without the record that makes them current.
//! So a key never overwrites its durable value in place. It has two record
//! keys (slots `a` and `b`); a change goes to the slot that does not hold
//! the durable value, tagged with the checkpoint's sequence number, and
//! restore takes, per key, the slot with the highest sequence number not
//! above the checkpoint's. Entries of an unfinished checkpoint (higher
//! numbers) are ignored, then deleted by the next checkpoint. A removed key
//! first gets a removal marker (so the value stays until the checkpoint is
//! durable), then both its records are deleted (Kafka tombstones) by the
//! next checkpoint, the value's slot first. Compaction keeps the newest
//! record per record key, which is all restore reads: reading a compacted
//! topic and replaying an uncompacted one in order give the same state.

use crate::engine::StateChange;
use std::collections::{BTreeMap, HashMap};

/// Leading bytes of an entry record's value (format version 1).
const MAGIC: &[u8; 8] = b"WEIRENT1";

/// One of the two record keys of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// Record key ending `/a/<key>`.
    A,
    /// Record key ending `/b/<key>`.
    B,
}

impl Slot {
    fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    fn letter(self) -> u8 {
        match self {
            Slot::A => b'a',
            Slot::B => b'b',
        }
    }
}

/// The record key of `key` of `operator` in `task`, slot `slot`:
/// `task/<n>/<operator length>:<operator>/<a|b>/<key bytes>`. The length
/// prefix keeps it unambiguous whatever bytes the operator name and key hold,
/// and it never equals a checkpoint key (`task/<n>`).
pub fn entry_key(task: i32, operator: &str, slot: Slot, key: &[u8]) -> Vec<u8> {
    let mut out = format!("task/{task}/{}:{operator}/", operator.len()).into_bytes();
    out.push(slot.letter());
    out.push(b'/');
    out.extend_from_slice(key);
    out
}

/// A record key written by [`entry_key`], taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct EntryKey<'a> {
    /// The task.
    pub task: i32,
    /// The operator.
    pub operator: &'a str,
    /// The slot.
    pub slot: Slot,
    /// The operator's key.
    pub key: &'a [u8],
}

/// Reads what [`entry_key`] wrote (None for any other key).
pub fn parse_entry_key(bytes: &[u8]) -> Option<EntryKey<'_>> {
    let rest = bytes.strip_prefix(b"task/")?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    let task = std::str::from_utf8(&rest[..slash]).ok()?.parse().ok()?;
    let rest = &rest[slash + 1..];
    let colon = rest.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
    let rest = &rest[colon + 1..];
    let operator = std::str::from_utf8(rest.get(..len)?).ok()?;
    let rest = rest.get(len..)?;
    let slot = match rest.get(..3)? {
        b"/a/" => Slot::A,
        b"/b/" => Slot::B,
        _ => return None,
    };
    Some(EntryKey { task, operator, slot, key: &rest[3..] })
}

/// An entry record's value: `WEIRENT1`, the checkpoint's sequence number
/// (u64 LE), 1 and the value, or 0 for a removal marker.
pub fn encode_value(seq: u64, value: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 9 + value.map_or(0, <[u8]>::len));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_le_bytes());
    match value {
        Some(value) => {
            out.push(1);
            out.extend_from_slice(value);
        }
        None => out.push(0),
    }
    out
}

/// Reads what [`encode_value`] wrote.
pub fn decode_value(bytes: &[u8]) -> Result<(u64, Option<&[u8]>), String> {
    let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or("not a weir state entry (bad magic)")?;
    let (seq, rest) = rest.split_at_checked(8).ok_or("truncated sequence number")?;
    let seq = u64::from_le_bytes(seq.try_into().expect("8 bytes"));
    match rest.split_first() {
        Some((1, value)) => Ok((seq, Some(value))),
        Some((0, [])) => Ok((seq, None)),
        _ => Err("bad entry flag".into()),
    }
}

/// What one record holds: sequence number and value (None: removal marker).
type Record = (u64, Option<Vec<u8>>);

/// The entry records of one operator of one task as read from the topic
/// (per record key, the newest; a Kafka tombstone deletes).
#[derive(Debug, Default)]
pub struct Collected {
    records: HashMap<(Slot, Vec<u8>), Record>,
}

impl Collected {
    /// Applies one record read from the topic (`value` None: a tombstone).
    pub fn apply(&mut self, slot: Slot, key: &[u8], value: Option<&[u8]>) -> Result<u64, String> {
        match value {
            None => {
                self.records.remove(&(slot, key.to_vec()));
                Ok(0)
            }
            Some(bytes) => {
                let (seq, value) = decode_value(bytes)?;
                self.records.insert((slot, key.to_vec()), (seq, value.map(<[u8]>::to_vec)));
                Ok(seq)
            }
        }
    }

    /// The state as of checkpoint `seq`: per key, the slot with the highest
    /// sequence number not above `seq`. Records above it (an unfinished
    /// checkpoint), markers and superseded values are deleted by the next
    /// checkpoint, except superseded values of live keys (the next change
    /// overwrites them).
    pub fn resolve(self, seq: u64) -> KeyedLog {
        let mut by_key: BTreeMap<Vec<u8>, Vec<(Slot, Record)>> = BTreeMap::new();
        for ((slot, key), record) in self.records {
            by_key.entry(key).or_default().push((slot, record));
        }
        let mut log = KeyedLog::default();
        for (key, mut slots) in by_key {
            slots.sort_by_key(|(slot, (s, _))| (*s, *slot));
            let current = slots.iter().rposition(|(_, (s, _))| *s <= seq);
            let (live, stale): (Vec<_>, Vec<_>) = slots.into_iter().enumerate().partition(|(i, _)| Some(*i) == current);
            let live = live.into_iter().next().map(|(_, slot)| slot);
            match live {
                Some((slot, (_, Some(value)))) => {
                    // A superseded value of a live key is overwritten by its next change; only unfinished writes are junk.
                    for (_, (other, (s, _))) in stale {
                        if s > seq {
                            log.cleanup.push((other, key.clone()));
                        }
                    }
                    log.bytes += (key.len() + value.len()) as u64;
                    log.keys.insert(key, (slot, value));
                }
                // Removed (or only junk): delete everything, value slots before the marker.
                Some((marker, (_, None))) => {
                    log.cleanup.extend(stale.into_iter().map(|(_, (slot, _))| (slot, key.clone())));
                    log.cleanup.push((marker, key));
                }
                None => log.cleanup.extend(stale.into_iter().map(|(_, (slot, _))| (slot, key.clone()))),
            }
        }
        log
    }
}

/// The durable keyed state of one operator of one task, as the state topic
/// holds it: each live key's value and slot, and the records the next
/// checkpoint deletes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KeyedLog {
    keys: HashMap<Vec<u8>, (Slot, Vec<u8>)>,
    /// Record keys to delete (tombstone) at the next checkpoint, in order.
    cleanup: Vec<(Slot, Vec<u8>)>,
    bytes: u64,
}

/// The records one checkpoint writes for one keyed operator, and what
/// becomes durable with them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KeyedWrite {
    /// The operator.
    pub operator: String,
    /// Records to produce in this order before the checkpoint record:
    /// record key and value (None: a Kafka tombstone).
    pub records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// What becomes durable for each changed key.
    updates: Vec<KeyUpdate>,
    /// Entries changed or removed (for metrics).
    pub changed: usize,
}

/// What one checkpoint makes durable for one key.
#[derive(Debug, Clone, PartialEq)]
enum KeyUpdate {
    /// The key's new value, in the record of `slot`.
    Put { key: Vec<u8>, slot: Slot, value: Vec<u8> },
    /// The key removed by a marker record in `marker`; its records are
    /// deleted at the following checkpoint.
    Remove { key: Vec<u8>, marker: Slot },
}

impl KeyedWrite {
    /// Bytes of the records (keys and values).
    pub fn bytes(&self) -> u64 {
        self.records.iter().map(|(k, v)| (k.len() + v.as_ref().map_or(0, Vec::len)) as u64).sum()
    }

    /// The largest record value, to check against `state.max_bytes`.
    pub fn largest_value(&self) -> u64 {
        self.records.iter().filter_map(|(_, v)| v.as_ref()).map(|v| v.len() as u64).max().unwrap_or(0)
    }
}

impl KeyedLog {
    /// Live entries, for `restore-entries`.
    pub fn entries(&self) -> Vec<(&[u8], &[u8])> {
        self.keys.iter().map(|(k, (_, v))| (k.as_slice(), v.as_slice())).collect()
    }

    /// Live entry count.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is live.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Bytes of live keys and values.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The records checkpoint `seq` writes for `changes` (with `full`, the
    /// operator's whole state: keys it does not name are removed, values
    /// equal to the durable ones are not written again).
    pub fn plan(&self, task: i32, operator: &str, seq: u64, changes: Vec<StateChange>, full: bool) -> KeyedWrite {
        let mut write = KeyedWrite { operator: operator.to_owned(), ..KeyedWrite::default() };
        for (slot, key) in &self.cleanup {
            write.records.push((entry_key(task, operator, *slot, key), None));
        }
        let mut named = std::collections::HashSet::new();
        let change = |write: &mut KeyedWrite, key: Vec<u8>, value: Option<Vec<u8>>| {
            let durable = self.keys.get(&key);
            match (durable, value) {
                (None, None) => {}
                (Some((_, old)), Some(new)) if full && *old == new => {}
                (durable, value) => {
                    let slot = durable.map_or(Slot::A, |(slot, _)| slot.other());
                    write.records.push((entry_key(task, operator, slot, &key), Some(encode_value(seq, value.as_deref()))));
                    write.changed += 1;
                    match value {
                        Some(value) => write.updates.push(KeyUpdate::Put { key, slot, value }),
                        None => write.updates.push(KeyUpdate::Remove { key, marker: slot }),
                    }
                }
            }
        };
        for StateChange { key, value } in changes {
            if full {
                named.insert(key.clone());
            }
            change(&mut write, key, value);
        }
        if full {
            for key in self.keys.keys().filter(|k| !named.contains(*k)) {
                change(&mut write, key.clone(), None);
            }
        }
        write
    }

    /// Makes `write` durable in the log (its checkpoint was written).
    pub fn apply(&mut self, write: KeyedWrite) {
        self.cleanup.clear();
        for update in write.updates {
            match update {
                KeyUpdate::Put { key, slot, value } => {
                    let size = key.len() as u64;
                    self.bytes += size + value.len() as u64;
                    if let Some((_, old)) = self.keys.insert(key, (slot, value)) {
                        self.bytes -= size + old.len() as u64;
                    }
                }
                KeyUpdate::Remove { key, marker } => {
                    // The old value's record first: a marker alone still means removed.
                    if let Some((slot, old)) = self.keys.remove(&key) {
                        self.bytes -= key.len() as u64 + old.len() as u64;
                        self.cleanup.push((slot, key.clone()));
                    }
                    self.cleanup.push((marker, key));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_round_trip_whatever_the_operator_name_and_key_hold() {
        for (operator, key) in [("fraud", &b"\"u1\""[..]), ("a/b:c", b"/a/x"), ("", b""), ("op", b"task/1")] {
            for slot in [Slot::A, Slot::B] {
                let bytes = entry_key(12, operator, slot, key);
                assert_eq!(parse_entry_key(&bytes), Some(EntryKey { task: 12, operator, slot, key }));
            }
        }
        assert_eq!(parse_entry_key(b"task/3"), None, "a checkpoint key is not an entry key");
        assert_eq!(parse_entry_key(b"task/3/9:short/a/"), None);
        assert_eq!(decode_value(&encode_value(9, Some(b"v"))).unwrap(), (9, Some(&b"v"[..])));
        assert_eq!(decode_value(&encode_value(9, None)).unwrap(), (9, None));
        assert!(decode_value(b"WEIRENT1").is_err());
    }

    /// The state topic of one task and one keyed operator, as a log.
    #[derive(Default, Clone)]
    struct Topic {
        log: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    }

    impl Topic {
        /// Writes a checkpoint; with `crash_after`, only that many entry records and no checkpoint record.
        fn write(&mut self, log: &mut KeyedLog, seq: u64, changes: Vec<StateChange>, full: bool, crash_after: Option<usize>) {
            let write = log.plan(0, "op", seq, changes, full);
            let n = crash_after.unwrap_or(write.records.len()).min(write.records.len());
            self.log.extend(write.records[..n].iter().cloned());
            if crash_after.is_none() {
                self.log.push((b"task/0".to_vec(), Some(seq.to_le_bytes().to_vec())));
                log.apply(write);
            }
        }

        /// What a restore reads: the durable log and the next sequence number.
        fn restore(&self) -> (KeyedLog, u64) {
            let mut collected = Collected::default();
            let (mut header, mut max) = (0, 0);
            for (key, value) in &self.log {
                if key == b"task/0" {
                    header = u64::from_le_bytes(value.as_ref().unwrap()[..8].try_into().unwrap());
                    max = max.max(header);
                } else {
                    let entry = parse_entry_key(key).unwrap();
                    max = max.max(collected.apply(entry.slot, entry.key, value.as_deref()).unwrap());
                }
            }
            (collected.resolve(header), max + 1)
        }

        /// Compaction: the newest record per key, tombstones gone.
        fn compacted(&self) -> Topic {
            let mut newest: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            for (key, value) in self.log.iter().rev() {
                if !newest.iter().any(|(k, _)| k == key) {
                    newest.push((key.clone(), value.clone()));
                }
            }
            newest.reverse();
            Topic { log: newest.into_iter().filter(|(_, v)| v.is_some()).collect() }
        }
    }

    fn entries(log: &KeyedLog) -> BTreeMap<Vec<u8>, Vec<u8>> {
        log.entries().into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }

    /// Changes for round `round`: puts and removals over 12 keys.
    fn changes(round: u64, model: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<StateChange> {
        let mut out = Vec::new();
        for k in 0..12u64 {
            let mix = (round * 31 + k * 17) % 7;
            let key = format!("k{k}").into_bytes();
            let value = match mix {
                0 | 1 => Some(format!("r{round}k{k}").into_bytes()),
                2 => None,
                _ => continue,
            };
            match &value {
                Some(v) => model.insert(key.clone(), v.clone()),
                None => model.remove(&key),
            };
            out.push(StateChange { key, value });
        }
        out
    }

    #[test]
    fn restore_equals_the_last_checkpoint_compacted_or_not_and_after_unfinished_checkpoints() {
        let mut topic = Topic::default();
        let mut log = KeyedLog::default();
        let mut model = BTreeMap::new();
        let mut seq = 1;
        for round in 0..40u64 {
            let mut next_model = model.clone();
            let batch = changes(round, &mut next_model);
            if round % 5 == 4 {
                // A crash part-way through the checkpoint: its records are
                // on the topic, its checkpoint record is not.
                topic.write(&mut log, seq, batch, false, Some((round as usize) % 4 + 1));
                for view in [topic.clone(), topic.compacted()] {
                    let (restored, _) = view.restore();
                    assert_eq!(entries(&restored), model, "round {round}: the unfinished checkpoint is ignored");
                }
                // The next owner carries on from what it restored (compacted or not).
                let (restored, next) = if round % 10 == 4 { topic.restore() } else { topic.compacted().restore() };
                if round % 10 != 4 {
                    topic = topic.compacted();
                }
                log = restored;
                seq = next;
                continue;
            }
            topic.write(&mut log, seq, batch, false, None);
            seq += 1;
            model = next_model;
            assert_eq!(entries(&log), model, "round {round}: the writer's view");
            for view in [topic.clone(), topic.compacted()] {
                assert_eq!(entries(&view.restore().0), model, "round {round}: restore");
            }
        }
        // Removed keys leave no records behind once compacted.
        let live: std::collections::HashSet<&Vec<u8>> = model.keys().collect();
        let compacted = topic.compacted();
        let keys = compacted.log.iter().filter_map(|(k, _)| parse_entry_key(k)).map(|e| e.key.to_vec()).collect::<std::collections::HashSet<_>>();
        assert!(keys.iter().all(|k| live.contains(k)), "only live keys keep records after compaction");
    }

    #[test]
    fn a_full_write_removes_unnamed_keys_and_skips_unchanged_values() {
        let mut topic = Topic::default();
        let mut log = KeyedLog::default();
        let put = |k: &str, v: &str| StateChange { key: k.into(), value: Some(v.into()) };
        topic.write(&mut log, 1, vec![put("a", "1"), put("b", "2")], false, None);
        let write = log.plan(0, "op", 2, vec![put("a", "1"), put("c", "3")], true);
        assert_eq!(write.changed, 2, "c added, b removed, a unchanged");
        topic.write(&mut log, 2, vec![put("a", "1"), put("c", "3")], true, None);
        assert_eq!(entries(&topic.restore().0), BTreeMap::from([(b"a".to_vec(), b"1".to_vec()), (b"c".to_vec(), b"3".to_vec())]));
    }
}
