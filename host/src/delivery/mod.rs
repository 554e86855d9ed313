//! Delivery guarantees: which offsets may be committed, dead-letter records,
//! poison-record isolation by bisection, retry with backoff.

pub mod dead_letter;
pub mod isolate;
pub mod message_size;
pub mod offsets;
pub mod retry;
