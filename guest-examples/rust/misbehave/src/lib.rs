//! Map that misbehaves on purpose (for host tests). At the first row whose
//! utf8 column `action` is one of: `panic` (panics "poison record"), `loop`
//! (spins forever), `oom` (allocates 1 MiB chunks until allocation fails),
//! `stack` (unbounded recursion), `wrong-rows` (returns num_rows - 1 rows),
//! `error` (returns Failed("asked to fail")). Otherwise, or without an
//! `action` column, it is the identity. No config.
//!
//! Build: cargo build --release --target wasm32-wasip2 -p misbehave

use std::hint::black_box;

use weir_sdk::{Batch, Error, Map, MapOutput, NoConfig};

const ACTIONS: [&str; 6] = ["panic", "loop", "oom", "stack", "wrong-rows", "error"];

struct Misbehave;

/// Recursion through a function pointer read with a volatile load: no
/// inlining, no tail call and no shadow-stack frame, so it exhausts the Wasm
/// call stack itself.
fn recurse(depth: u64) -> u64 {
    // SAFETY: reading a plain `fn` pointer from a static.
    let next: fn(u64) -> u64 = unsafe { std::ptr::read_volatile(&NEXT) };
    next(depth + 1).wrapping_add(depth)
}

static NEXT: fn(u64) -> u64 = recurse;

impl Map for Misbehave {
    type Config = NoConfig;

    fn init(_: NoConfig) -> Result<Self, Error> {
        Ok(Misbehave)
    }

    fn process(&mut self, mut batch: Batch) -> Result<MapOutput, Error> {
        let action = match batch.get_column("action").map(|c| c.utf8()) {
            Some(Ok(view)) => view
                .iter()
                .flatten()
                .find(|a| ACTIONS.contains(a))
                .map(str::to_owned),
            _ => None,
        };
        match action.as_deref() {
            Some("panic") => panic!("poison record"),
            Some("loop") => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            Some("oom") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    chunk.iter_mut().step_by(4096).for_each(|b| *b = 1); // touch every page
                    hoard.push(black_box(chunk));
                }
            }
            Some("stack") => {
                black_box(recurse(0));
            }
            Some("wrong-rows") => batch.truncate(batch.num_rows().saturating_sub(1)),
            Some("error") => return Err(Error::Failed("asked to fail".into())),
            _ => {}
        }
        Ok(MapOutput::new(batch))
    }
}

weir_sdk::export_map!(Misbehave);
