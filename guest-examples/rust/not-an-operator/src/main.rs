//! Not an operator: a plain `wasm32-wasip2` command component (it exports
//! `wasi:cli/run` and no `weir:operator` interface). Used to test that the
//! host rejects components of the wrong world.
//!
//! Build: cargo build --release --target wasm32-wasip2 -p not-an-operator
//! Output: target/guests/wasm32-wasip2/release/not-an-operator.wasm

fn main() {
    println!("I am not a weir operator");
}
