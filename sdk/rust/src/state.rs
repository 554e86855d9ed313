//! Keyed aggregate state, for incremental checkpoints (contract 0.1.1,
//! `weir:operator/keyed-state`): the host stores an aggregate's state as one
//! record per key and, at each checkpoint, writes only the keys changed or
//! removed since the previous one.
//!
//! [`Windows`](crate::window::Windows) implements [`KeyedState`]; an
//! aggregate whose state is a `Windows` returns it from
//! [`Aggregate::keyed_state`](crate::Aggregate::keyed_state) and gets
//! incremental checkpoints. Any other aggregate is checkpointed as one entry
//! holding its whole [`snapshot`](crate::Aggregate::snapshot).

use crate::Error;

/// One key of the state: its serialised value, or `None` when removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// The key's bytes, unique within the operator.
    pub key: Vec<u8>,
    /// The key's serialised state; `None` = removed.
    pub value: Option<Vec<u8>>,
}

/// State that tracks which keys changed, so checkpoints write only those.
pub trait KeyedState {
    /// The keys changed or removed since the last call of this,
    /// [`KeyedState::entries`] or [`KeyedState::restore_entries`].
    fn changes(&mut self) -> Result<Vec<StateEntry>, Error>;
    /// Every key (values all present); starts change tracking afresh.
    fn entries(&mut self) -> Result<Vec<StateEntry>, Error>;
    /// Replaces the state with `entries` (from [`KeyedState::entries`] and
    /// [`KeyedState::changes`] of an earlier instance, merged by the host).
    fn restore_entries(&mut self, entries: Vec<StateEntry>) -> Result<(), Error>;
}
