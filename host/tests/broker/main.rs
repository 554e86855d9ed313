//! `weir run` as a process against a real Apache Kafka broker (one KRaft node
//! per test binary, `weir_tests::broker::Kafka::shared`; `scripts/setup`
//! fetches it): at-least-once runs, exactly-once with kill -9 cycles and
//! fencing, consumer groups under the classic and the KIP-848 protocols.

mod exactly_once;
mod groups;
mod runs;
mod support;
