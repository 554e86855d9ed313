//! A schema-driven JSON scanner: one pass over each record that builds the
//! Arrow columns of the schema's fields directly and skips every other
//! value without building it (a checked skip: strings, escapes, numbers).
//!
//! Why hand-written: arrow-json first builds a tape of every token of the
//! record (unread fields included), then converts the tape per column;
//! serde_json, simd-json and sonic-rs build values or DOMs, or skip only
//! through a typed `Deserialize`, and none of them appends to Arrow
//! builders. The scanner reads each byte once and touches only the columns
//! of the (possibly projected) schema.
//!
//! Same decisions as arrow-json, by construction: the scanner accepts only
//! strict JSON objects whose fields have exactly the shapes it converts the
//! way arrow-json does (numbers parsed with the same `lexical-core` calls,
//! escapes decoded by the same rules). Anything else — a malformed or
//! truncated record, a wrong type, a duplicate schema key, a number given as
//! a string, a timestamp given as text, deep nesting, non-UTF-8 bytes — makes
//! it give up on the batch ([`Scanner::decode`] returns `None`) and the
//! caller decodes the batch with arrow-json, which rejects or converts it as
//! before (error messages included). The differential tests in `tests.rs`
//! hold the two to the same output.

mod columns;
mod cursor;
#[cfg(test)]
mod tests;

use arrow_array::RecordBatch;
use columns::{Check, Column};
use arrow_schema::{DataType, SchemaRef};
use cursor::{Bail, Cursor, Scan, Text};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Whether the scanner builds a column of this type (integer epoch values
/// for timestamps: text timestamps bail; lists of nullable strings).
fn builds(data_type: &DataType) -> bool {
    match data_type {
        DataType::Boolean | DataType::Int32 | DataType::Int64 | DataType::Float32 | DataType::Float64 | DataType::Utf8 | DataType::Timestamp(..) => true,
        DataType::List(item) => item.data_type() == &DataType::Utf8 && item.is_nullable(),
        _ => false,
    }
}

/// The scanner for one schema (shared by the decoder's threads).
#[derive(Debug)]
pub(super) struct Scanner {
    schema: SchemaRef,
    /// The schema of the batches it builds: `schema`, or the projection of
    /// it whose columns are built (the other fields are only checked).
    output: SchemaRef,
    /// Per schema field: built (in `output`) or only checked.
    built: Vec<bool>,
    nullable: Vec<bool>,
    names: HashMap<Box<str>, usize>,
    /// The key layout the last batch ended with: the next starts from it,
    /// so steady traffic matches every key without a lookup or allocation.
    learned: Mutex<Arc<Vec<KeySlot>>>,
}

impl Scanner {
    /// A scanner for `schema` that builds the columns `built` (ascending
    /// schema indices; all when `None`) and checks the other fields as
    /// strictly without building them. `None` when a field has a type it
    /// does not build (arrow-json then decodes every batch) or two fields
    /// share a name.
    pub fn new(schema: &SchemaRef, built: Option<&[usize]>) -> Option<Scanner> {
        let mut names = HashMap::new();
        for (index, field) in schema.fields().iter().enumerate() {
            if !builds(field.data_type()) || names.insert(field.name().as_str().into(), index).is_some() {
                return None;
            }
        }
        if names.is_empty() {
            return None;
        }
        let nullable = schema.fields().iter().map(|f| f.is_nullable()).collect();
        let (output, built) = match built {
            Some(columns) => {
                let output = Arc::new(schema.project(columns).ok()?);
                (output, (0..schema.fields().len()).map(|i| columns.contains(&i)).collect())
            }
            None => (schema.clone(), vec![true; schema.fields().len()]),
        };
        Some(Scanner { schema: schema.clone(), output, built, nullable, names, learned: Mutex::default() })
    }

    /// The batch of `lines` (one JSON object each), or `None` when any line
    /// is outside what the scanner decides alone.
    pub fn decode(&self, lines: &[&[u8]]) -> Option<RecordBatch> {
        let mut batch = BatchScan::new(self, lines);
        for line in lines {
            batch.record(line).ok()?;
        }
        batch.finish()
    }
}

/// A key seen at one position of the previous records: records of a topic
/// usually list their keys in the same order, so a key is matched with one
/// comparison instead of a lookup.
#[derive(Debug, Clone)]
struct KeySlot {
    /// The key's raw bytes (`None` when it had escapes: always looked up).
    raw: Option<Arc<[u8]>>,
    /// The schema field it names.
    field: Option<usize>,
}

/// One batch in progress.
struct BatchScan<'s> {
    scanner: &'s Scanner,
    builders: Vec<Column>,
    /// Row number (from 1) that last set each field: a second set is a duplicate key.
    seen: Vec<u32>,
    row: u32,
    layout: Arc<Vec<KeySlot>>,
    /// Whether `layout` changed (and is worth keeping for the next batch).
    relearned: bool,
    scratch: String,
}

impl<'s> BatchScan<'s> {
    fn new(scanner: &'s Scanner, lines: &[&[u8]]) -> BatchScan<'s> {
        let rows = lines.len();
        let bytes: usize = lines.iter().map(|l| l.len()).sum();
        let per_string = bytes / scanner.nullable.len().max(1);
        let builders = (scanner.schema.fields().iter().zip(&scanner.built))
            .map(|(field, &built)| if built { Column::new(field.data_type(), rows, per_string) } else { Column::Check(Check::of(field.data_type())) })
            .collect();
        BatchScan { scanner, builders, seen: vec![0; scanner.nullable.len()], row: 0, layout: scanner.learned.lock().map(|l| l.clone()).unwrap_or_default(), relearned: false, scratch: String::new() }
    }

    /// Scans one record into the builders.
    fn record(&mut self, line: &[u8]) -> Scan<()> {
        let text = std::str::from_utf8(line).map_err(|_| Bail)?;
        let mut cursor = Cursor::new(text);
        self.row += 1;
        let mut found = 0;
        cursor.skip_ws();
        cursor.expect(b'{')?;
        cursor.skip_ws();
        if cursor.peek() == Some(b'}') {
            cursor.advance(1);
        } else {
            let mut position = 0;
            loop {
                cursor.expect(b'"')?;
                let field = self.key(&mut cursor, position)?;
                position += 1;
                cursor.skip_ws();
                cursor.expect(b':')?;
                cursor.skip_ws();
                match field {
                    Some(index) => {
                        if self.seen[index] == self.row {
                            return Err(Bail);
                        }
                        self.seen[index] = self.row;
                        found += 1;
                        self.value(index, &mut cursor)?;
                    }
                    None => cursor.skip_value(1)?,
                }
                cursor.skip_ws();
                match cursor.peek() {
                    Some(b',') => {
                        cursor.advance(1);
                        cursor.skip_ws();
                    }
                    Some(b'}') => {
                        cursor.advance(1);
                        break;
                    }
                    _ => return Err(Bail),
                }
            }
        }
        if !cursor.at_end() {
            return Err(Bail);
        }
        if found < self.builders.len() {
            for index in 0..self.builders.len() {
                if self.seen[index] != self.row {
                    if !self.scanner.nullable[index] {
                        return Err(Bail);
                    }
                    self.builders[index].push_null();
                }
            }
        }
        Ok(())
    }

    /// After a key's opening quote: the schema field it names, if any.
    #[inline]
    fn key(&mut self, cursor: &mut Cursor, position: usize) -> Scan<Option<usize>> {
        if let Some(KeySlot { raw: Some(raw), field }) = self.layout.get(position) {
            let rest = cursor.rest();
            if rest.get(raw.len()) == Some(&b'"') && rest.starts_with(raw) {
                cursor.advance(raw.len() + 1);
                return Ok(*field);
            }
        }
        let (name, raw) = match cursor.string(&mut self.scratch)? {
            Text::Borrowed(name) => (name, Some(name.as_bytes().into())),
            Text::Decoded => (self.scratch.as_str(), None),
        };
        let field = self.scanner.names.get(name).copied();
        let slot = KeySlot { raw, field };
        let layout = Arc::make_mut(&mut self.layout);
        if position < layout.len() {
            layout[position] = slot;
        } else {
            layout.push(slot);
        }
        self.relearned = true;
        Ok(field)
    }

    /// The value of schema field `index`, appended to its column.
    #[inline]
    fn value(&mut self, index: usize, cursor: &mut Cursor) -> Scan<()> {
        if cursor.peek() == Some(b'n') {
            cursor.literal(b"null")?;
            if !self.scanner.nullable[index] {
                return Err(Bail);
            }
            self.builders[index].push_null();
            return Ok(());
        }
        match &mut self.builders[index] {
            Column::Float64(values, validity) => {
                values.push(float(cursor)?);
                validity.push(true);
            }
            Column::Utf8(strings) => {
                cursor.expect(b'"')?;
                match cursor.string(&mut self.scratch)? {
                    Text::Borrowed(s) => strings.push(s),
                    Text::Decoded => strings.push(&self.scratch),
                }
                .ok_or(Bail)?;
            }
            Column::Int64(values, validity) => {
                values.push(integer(cursor)?);
                validity.push(true);
            }
            Column::Int32(values, validity) => {
                values.push(integer(cursor)?);
                validity.push(true);
            }
            Column::Float32(values, validity) => {
                values.push(float(cursor)?);
                validity.push(true);
            }
            Column::Bool(values, validity) => {
                values.append(boolean(cursor)?);
                validity.push(true);
            }
            Column::List { offsets, items, validity } => {
                string_list(cursor, &mut self.scratch, |item| match item {
                    Some(text) => items.push(text),
                    None => {
                        items.push_null();
                        Some(())
                    }
                })?;
                Column::end_list(offsets, items, validity).ok_or(Bail)?;
            }
            Column::Check(check) => match check {
                Check::Bool => {
                    let _ = boolean(cursor)?;
                }
                Check::Int32 => {
                    let _ = integer::<i32>(cursor)?;
                }
                Check::Int64 => {
                    let _ = integer::<i64>(cursor)?;
                }
                Check::Float32 => {
                    let _ = float::<f32>(cursor)?;
                }
                Check::Float64 => {
                    let _ = float::<f64>(cursor)?;
                }
                Check::Utf8 => {
                    cursor.expect(b'"')?;
                    cursor.string(&mut self.scratch)?;
                }
                Check::List => string_list(cursor, &mut self.scratch, |_| Some(()))?,
            },
        }
        Ok(())
    }

    /// The batch, each column typed as the schema says.
    fn finish(self) -> Option<RecordBatch> {
        if self.relearned
            && let Ok(mut learned) = self.scanner.learned.lock()
        {
            *learned = self.layout;
        }
        let fields = self.scanner.schema.fields();
        let columns = (self.builders.into_iter().zip(fields))
            .filter(|(column, _)| !matches!(column, Column::Check(_)))
            .map(|(column, field)| column.finish(field.data_type()))
            .collect::<Option<Vec<_>>>()?;
        RecordBatch::try_new(self.scanner.output.clone(), columns).ok()
    }
}

/// `true` or `false`.
#[inline]
fn boolean(cursor: &mut Cursor) -> Scan<bool> {
    match cursor.peek() {
        Some(b't') => cursor.literal(b"true").map(|()| true),
        Some(b'f') => cursor.literal(b"false").map(|()| false),
        _ => Err(Bail),
    }
}

/// A list of strings and nulls, each handed to `item` (`None` for a null;
/// `item` returning `None` gives up on the batch).
#[inline]
fn string_list(cursor: &mut Cursor, scratch: &mut String, mut item: impl FnMut(Option<&str>) -> Option<()>) -> Scan<()> {
    cursor.expect(b'[')?;
    cursor.skip_ws();
    if cursor.peek() == Some(b']') {
        cursor.advance(1);
        return Ok(());
    }
    loop {
        match cursor.peek() {
            Some(b'"') => {
                cursor.advance(1);
                match cursor.string(scratch)? {
                    Text::Borrowed(text) => item(Some(text)),
                    Text::Decoded => item(Some(scratch.as_str())),
                }
                .ok_or(Bail)?;
            }
            Some(b'n') => {
                cursor.literal(b"null")?;
                item(None).ok_or(Bail)?;
            }
            _ => return Err(Bail),
        }
        cursor.skip_ws();
        match cursor.peek() {
            Some(b',') => {
                cursor.advance(1);
                cursor.skip_ws();
            }
            Some(b']') => {
                cursor.advance(1);
                return Ok(());
            }
            _ => return Err(Bail),
        }
    }
}

/// A number parsed as arrow-json parses it (`lexical-core`, its default format).
#[inline]
fn float<T: lexical_core::FromLexical>(cursor: &mut Cursor) -> Scan<T> {
    lexical_core::parse::<T>(cursor.number()?.text).map_err(|_| Bail)
}

/// An integer written as one (`-?digits`) and in range: arrow-json's first
/// attempt. Fractions, exponents and overflow take arrow-json's float fallback,
/// so they bail.
#[inline]
fn integer<T: lexical_core::FromLexical>(cursor: &mut Cursor) -> Scan<T> {
    let number = cursor.number()?;
    if !number.integer {
        return Err(Bail);
    }
    lexical_core::parse::<T>(number.text).map_err(|_| Bail)
}
