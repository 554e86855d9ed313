//! Map that misbehaves on purpose (for host tests). At the first row whose
//! utf8 column `action` is one of: `panic` (panics "poison record"), `loop`
//! (spins forever), `oom` (allocates 1 MiB chunks until allocation fails),
//! `stack` (unbounded recursion), `wrong-rows` (returns num_rows - 1 rows),
//! `error` (returns Failed("asked to fail")), `sleep` (sleeps an hour in a
//! WASI clock wait). Besides, if any row says `log-spam`, it logs 500 times a
//! line to stdout, two to stderr and a host `log` call (with terminal escape
//! sequences and forged log lines); if any says `big-row`, it adds a utf8
//! column `blob`, 2 MiB in those rows and empty elsewhere. Otherwise, or
//! without an `action` column, it is the identity. No config.
//!
//! Build: cargo build --release --target wasm32-wasip2 -p misbehave

use std::hint::black_box;

use weir_sdk::{Batch, DataType, Error, Field, Map, MapOutput, NoConfig, StringBuilder};

const ACTIONS: [&str; 7] = ["panic", "loop", "oom", "stack", "wrong-rows", "error", "sleep"];

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
            Some("sleep") => std::thread::sleep(std::time::Duration::from_secs(3600)),
            _ => {}
        }
        let says = |wanted: &str| match batch.get_column("action").map(|c| c.utf8()) {
            Some(Ok(view)) => view.iter().flatten().any(|a| a == wanted),
            _ => false,
        };
        if says("log-spam") {
            for i in 0..500 {
                println!("spam {i}\x1b[2J\r2026-01-01T00:00:00Z ERROR weir: forged line");
                eprintln!("spam {i}\nERROR weir: forged");
                weir_sdk::log::log(weir_sdk::log::Level::Error, &format!("spam {i}\n\x1b[31mERROR weir: forged"));
            }
        }
        if says("big-row") {
            let actions = batch.column("action")?.utf8()?;
            let mut blob = StringBuilder::new();
            let big = "x".repeat(2 << 20);
            for row in 0..batch.num_rows() {
                blob.push_str(if actions.get(row) == Some("big-row") { &big } else { "" });
            }
            let blob = blob.finish();
            batch = batch.with_column(Field::new("blob", DataType::Utf8, false), blob)?;
        }
        Ok(MapOutput::new(batch))
    }
}

weir_sdk::export_map!(Misbehave);
