//! Guests that panic, loop forever, eat memory, overflow the stack, return
//! the wrong shape or an error: each yields its typed error and the next
//! batch runs on a fresh instance.

use super::support::*;
use std::time::{Duration, Instant};
use weir::engine::{Error, OperatorKind, SandboxLimits, TrapKind};
use weir::operator::Operator;
use weir_tests::guests;

fn misbehave(limits: SandboxLimits) -> Operator {
    let engine = engine_with(limits);
    Operator::new(load(&engine, guests::MISBEHAVE), "{}", Default::default()).unwrap()
}

fn limits() -> SandboxLimits {
    SandboxLimits { memory_limit_bytes: 32 << 20, call_deadline_ms: 300, ..SandboxLimits::default() }
}

/// Runs the poison batch, checks the error, then a clean batch on a fresh instance.
fn assert_trap_then_recovery(op: &mut Operator, action: &str, expected: TrapKind) -> Error {
    let error = op.map(&actions(&["ok", action, "ok"])).expect_err(action);
    assert_eq!(error.trap_kind(), Some(expected), "{action}: {error}");
    let clean = actions(&["fine", "also fine"]);
    let step = op.map(&clean).unwrap_or_else(|e| panic!("after {action}: {e}"));
    assert_eq!(step.batch, clean, "after {action} the fresh instance works");
    error
}

#[test]
fn panic_is_a_typed_trap_with_the_panic_message() {
    let mut op = misbehave(limits());
    let error = assert_trap_then_recovery(&mut op, "panic", TrapKind::Panic);
    assert!(error.to_string().contains("poison record"), "{error}");
    assert_eq!(op.stats().traps, 1);
    assert_eq!(op.stats().instances, 2);
}

#[test]
fn infinite_loop_hits_the_deadline() {
    let mut op = misbehave(limits());
    let started = Instant::now();
    assert_trap_then_recovery(&mut op, "loop", TrapKind::Deadline);
    assert!(started.elapsed() < Duration::from_secs(20), "the deadline interrupted the loop");
}

#[test]
fn a_guest_blocked_in_a_sleep_hits_the_deadline() {
    // `std::thread::sleep` is a WASI clock wait: host code, which epoch
    // interruption alone never stops.
    let mut op = misbehave(limits());
    let error = assert_trap_then_recovery(&mut op, "sleep", TrapKind::Deadline);
    assert!(error.to_string().contains("deadline"), "{error}");
}

#[test]
fn a_log_flood_is_cut_to_the_per_call_budget_and_counted() {
    let mut op = misbehave(limits());
    let labels = weir::telemetry::PluginLabels { plugin: "misbehave".into() };
    let dropped = weir::telemetry::guest_log_lines_dropped().get_or_create(&labels).get();
    let step = op.map(&actions(&["log-spam"])).expect("logging is not an error");
    assert_eq!(step.batch.num_rows(), 1);
    let now = weir::telemetry::guest_log_lines_dropped().get_or_create(&labels).get();
    // 2 000 lines written (500 x stdout, 2 x stderr, log), 100 per call allowed.
    assert!(now - dropped >= 1_900, "dropped {}", now - dropped);
}

#[test]
fn infinite_loop_runs_out_of_fuel_when_metered() {
    let mut op = misbehave(SandboxLimits { fuel_per_call: Some(50_000_000), call_deadline_ms: 60_000, ..limits() });
    assert_trap_then_recovery(&mut op, "loop", TrapKind::FuelExhausted);
}

#[test]
fn memory_bomb_stops_at_the_memory_limit() {
    let mut op = misbehave(limits());
    let error = assert_trap_then_recovery(&mut op, "oom", TrapKind::OutOfMemory);
    assert!(error.to_string().contains("memory limit"), "{error}");
}

#[test]
fn unbounded_recursion_is_a_stack_overflow() {
    let mut op = misbehave(limits());
    assert_trap_then_recovery(&mut op, "stack", TrapKind::StackOverflow);
}

#[test]
fn wrong_row_count_is_a_contract_error() {
    let mut op = misbehave(limits());
    let error = op.map(&actions(&["a", "wrong-rows", "c"])).unwrap_err();
    assert!(matches!(error, Error::Contract { .. }), "{error}");
    assert!(error.to_string().contains("2 rows for an input of 3"), "{error}");
    op.map(&actions(&["fine"])).expect("fresh instance after a contract breach");
}

#[test]
fn returned_error_keeps_the_instance() {
    let mut op = misbehave(limits());
    let error = op.map(&actions(&["error"])).unwrap_err();
    assert_eq!(error.kind_str(), "operator_failed", "{error}");
    assert!(error.to_string().contains("asked to fail"));
    op.map(&actions(&["fine"])).unwrap();
    assert_eq!(op.stats().instances, 1, "a returned error is not a trap");
}

#[test]
fn a_map_cannot_be_used_as_a_filter() {
    let engine = engine();
    let plugin = load(&engine, guests::MISBEHAVE);
    let error = plugin.expect_kind(OperatorKind::Filter).unwrap_err();
    assert!(matches!(error, Error::WrongKind { found: OperatorKind::Map, .. }), "{error}");
}

#[test]
fn many_isolated_instances_fit_and_stay_small() {
    let engine = engine();
    let plugin = load(&engine, guests::HIGH_VALUE_ORDERS);
    let instances: Vec<_> = (0..100)
        .map(|_| plugin.instantiate("{}", &Default::default()).expect("instance"))
        .collect();
    for instance in &instances {
        assert!(instance.peak_memory_bytes() <= 4 << 20, "{} bytes", instance.peak_memory_bytes());
    }
}
