//! A test fixture built against the frozen `weir:operator@0.1.0` contract
//! (`wit/` here is a copy of the package as released): an aggregate with
//! whole-state `snapshot`/`restore` and no `keyed-state`. It proves that
//! components built before 0.1.1 still load and checkpoint. It uses the raw
//! bindings, not the SDK (which follows the current contract).
//!
//! Counts rows per value of a utf8 column; every call emits, for each key it
//! saw, one row `(key, count, result_key = key)` with the running count.
//! Config: `{"key": "user_id"}` (default `key`).
//!
//! Build: cargo build --release --target wasm32-wasip2 -p legacy-aggregate

use std::cell::RefCell;
use std::collections::BTreeMap;

wit_bindgen::generate!({ path: "wit", world: "weir:operator/aggregate-operator@0.1.0" });

use exports::weir::operator::aggregate::Guest;
use weir::operator::types::{Batch, Column, DataType, Field, OperatorError, OperatorInfo};

struct State {
    key: String,
    counts: BTreeMap<String, i64>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

fn with_state<R>(f: impl FnOnce(&mut State) -> Result<R, OperatorError>) -> Result<R, OperatorError> {
    STATE.with_borrow_mut(|s| f(s.as_mut().ok_or_else(|| OperatorError::Failed("not initialised".into()))?))
}

fn utf8_column(values: &[&str]) -> Column {
    let mut offsets = vec![0u8; 4];
    let mut bytes = Vec::new();
    for v in values {
        bytes.extend_from_slice(v.as_bytes());
        offsets.extend_from_slice(&(bytes.len() as i32).to_le_bytes());
    }
    Column { validity: None, offsets, values: bytes, items: None }
}

struct Legacy;

impl Guest for Legacy {
    fn init(config: String) -> Result<OperatorInfo, OperatorError> {
        let config: serde_json::Value = serde_json::from_str(&config).map_err(|e| OperatorError::InvalidConfig(e.to_string()))?;
        let key = config.get("key").and_then(|k| k.as_str()).unwrap_or("key").to_owned();
        STATE.set(Some(State { key: key.clone(), counts: BTreeMap::new() }));
        Ok(OperatorInfo { reads: Some(vec![key]) })
    }

    fn process(input: Batch, _watermark: Option<i64>) -> Result<Vec<Batch>, OperatorError> {
        with_state(|state| {
            let index = input.schema.iter().position(|f| f.name == state.key).ok_or_else(|| OperatorError::InvalidInput(format!("no column `{}`", state.key)))?;
            let column = &input.columns[index];
            let offset = |i: usize| i32::from_le_bytes(column.offsets[i * 4..i * 4 + 4].try_into().unwrap()) as usize;
            let mut touched = BTreeMap::new();
            for row in 0..input.num_rows as usize {
                let key = std::str::from_utf8(&column.values[offset(row)..offset(row + 1)]).map_err(|e| OperatorError::InvalidInput(e.to_string()))?;
                let count = state.counts.entry(key.to_owned()).or_default();
                *count += 1;
                touched.insert(key.to_owned(), *count);
            }
            if touched.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<&str> = touched.keys().map(String::as_str).collect();
            let counts: Vec<u8> = touched.values().flat_map(|c| c.to_le_bytes()).collect();
            let field = |name: &str, data_type| Field { name: name.into(), data_type, nullable: false };
            Ok(vec![Batch {
                schema: vec![field(&state.key, DataType::Utf8), field("count", DataType::Int64), field("result_key", DataType::Utf8)],
                columns: vec![utf8_column(&keys), Column { validity: None, offsets: Vec::new(), values: counts, items: None }, utf8_column(&keys)],
                num_rows: keys.len() as u32,
            }])
        })
    }

    fn snapshot() -> Result<Vec<u8>, OperatorError> {
        with_state(|state| serde_json::to_vec(&state.counts).map_err(|e| OperatorError::Failed(e.to_string())))
    }

    fn restore(bytes: Vec<u8>) -> Result<(), OperatorError> {
        with_state(|state| {
            state.counts = serde_json::from_slice(&bytes).map_err(|e| OperatorError::InvalidInput(e.to_string()))?;
            Ok(())
        })
    }
}

export!(Legacy);
