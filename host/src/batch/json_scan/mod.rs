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

mod cursor;
#[cfg(test)]
mod tests;

use arrow_array::builder::{BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch, make_array};
use arrow_schema::{DataType, FieldRef, SchemaRef};
use cursor::{Bail, Cursor, Scan, Text};
use std::collections::HashMap;
use std::sync::Arc;

/// What the scanner builds for a schema field.
#[derive(Debug, Clone)]
enum Kind {
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    Utf8,
    /// Integer epoch values in the column's unit (text timestamps bail).
    Timestamp(DataType),
    /// A list of strings; the item field as the schema has it.
    ListUtf8(FieldRef),
}

/// The scanner for one schema (shared by the decoder's threads).
#[derive(Debug)]
pub(super) struct Scanner {
    schema: SchemaRef,
    kinds: Vec<Kind>,
    nullable: Vec<bool>,
    names: HashMap<Box<str>, usize>,
}

impl Scanner {
    /// A scanner for `schema`, or `None` when a field has a type it does
    /// not build (arrow-json then decodes every batch) or two fields share
    /// a name.
    pub fn new(schema: &SchemaRef) -> Option<Scanner> {
        let mut kinds = Vec::with_capacity(schema.fields().len());
        let mut names = HashMap::new();
        for (index, field) in schema.fields().iter().enumerate() {
            kinds.push(match field.data_type() {
                DataType::Boolean => Kind::Bool,
                DataType::Int32 => Kind::Int32,
                DataType::Int64 => Kind::Int64,
                DataType::Float32 => Kind::Float32,
                DataType::Float64 => Kind::Float64,
                DataType::Utf8 => Kind::Utf8,
                t @ DataType::Timestamp(..) => Kind::Timestamp(t.clone()),
                DataType::List(item) if item.data_type() == &DataType::Utf8 && item.is_nullable() => Kind::ListUtf8(item.clone()),
                _ => return None,
            });
            if names.insert(field.name().as_str().into(), index).is_some() {
                return None;
            }
        }
        if kinds.is_empty() {
            return None;
        }
        let nullable = schema.fields().iter().map(|f| f.is_nullable()).collect();
        Some(Scanner { schema: schema.clone(), kinds, nullable, names })
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

/// A column being built.
enum Builder {
    Bool(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    List(ListBuilder<StringBuilder>),
}

impl Builder {
    fn new(kind: &Kind, rows: usize, bytes: usize) -> Builder {
        match kind {
            Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            Kind::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            Kind::Int64 | Kind::Timestamp(_) => Builder::Int64(Int64Builder::with_capacity(rows)),
            Kind::Float32 => Builder::Float32(Float32Builder::with_capacity(rows)),
            Kind::Float64 => Builder::Float64(Float64Builder::with_capacity(rows)),
            Kind::Utf8 => Builder::Utf8(StringBuilder::with_capacity(rows, bytes)),
            Kind::ListUtf8(item) => Builder::List(ListBuilder::with_capacity(StringBuilder::new(), rows).with_field(item.clone())),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Utf8(b) => b.append_null(),
            Builder::List(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float32(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::List(b) => Arc::new(b.finish()),
        }
    }
}

/// A key seen at one position of the previous records: records of a topic
/// usually list their keys in the same order, so a key is matched with one
/// comparison instead of a lookup.
struct KeySlot {
    /// The key's raw bytes (`None` when it had escapes: always looked up).
    raw: Option<Box<[u8]>>,
    /// The schema field it names.
    field: Option<usize>,
}

/// One batch in progress.
struct BatchScan<'s> {
    scanner: &'s Scanner,
    builders: Vec<Builder>,
    /// Row number (from 1) that last set each field: a second set is a duplicate key.
    seen: Vec<u32>,
    row: u32,
    layout: Vec<KeySlot>,
    scratch: String,
}

impl<'s> BatchScan<'s> {
    fn new(scanner: &'s Scanner, lines: &[&[u8]]) -> BatchScan<'s> {
        let rows = lines.len();
        let bytes: usize = lines.iter().map(|l| l.len()).sum();
        let per_string = bytes / scanner.kinds.len().max(1);
        let builders = scanner.kinds.iter().map(|kind| Builder::new(kind, rows, per_string)).collect();
        BatchScan { scanner, builders, seen: vec![0; scanner.kinds.len()], row: 0, layout: Vec::new(), scratch: String::new() }
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
                    self.builders[index].append_null();
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
        if position < self.layout.len() {
            self.layout[position] = slot;
        } else {
            self.layout.push(slot);
        }
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
            self.builders[index].append_null();
            return Ok(());
        }
        match &mut self.builders[index] {
            Builder::Float64(b) => b.append_value(float(cursor)?),
            Builder::Utf8(b) => {
                cursor.expect(b'"')?;
                match cursor.string(&mut self.scratch)? {
                    Text::Borrowed(s) => b.append_value(s),
                    Text::Decoded => b.append_value(&self.scratch),
                }
            }
            Builder::Int64(b) => b.append_value(integer(cursor)?),
            Builder::Int32(b) => b.append_value(integer(cursor)?),
            Builder::Float32(b) => b.append_value(float(cursor)?),
            Builder::Bool(b) => match cursor.peek() {
                Some(b't') => {
                    cursor.literal(b"true")?;
                    b.append_value(true);
                }
                Some(b'f') => {
                    cursor.literal(b"false")?;
                    b.append_value(false);
                }
                _ => return Err(Bail),
            },
            Builder::List(b) => {
                cursor.expect(b'[')?;
                cursor.skip_ws();
                if cursor.peek() == Some(b']') {
                    cursor.advance(1);
                } else {
                    loop {
                        match cursor.peek() {
                            Some(b'"') => {
                                cursor.advance(1);
                                match cursor.string(&mut self.scratch)? {
                                    Text::Borrowed(s) => b.values().append_value(s),
                                    Text::Decoded => b.values().append_value(&self.scratch),
                                }
                            }
                            Some(b'n') => {
                                cursor.literal(b"null")?;
                                b.values().append_null();
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
                                break;
                            }
                            _ => return Err(Bail),
                        }
                    }
                }
                b.append(true);
            }
        }
        Ok(())
    }

    /// The batch; timestamp columns retyped from their integer builders.
    fn finish(mut self) -> Option<RecordBatch> {
        let mut columns = Vec::with_capacity(self.builders.len());
        for (builder, kind) in self.builders.iter_mut().zip(&self.scanner.kinds) {
            let column = builder.finish();
            columns.push(match kind {
                Kind::Timestamp(data_type) => make_array(column.into_data().into_builder().data_type(data_type.clone()).build().ok()?),
                _ => column,
            });
        }
        RecordBatch::try_new(self.scanner.schema.clone(), columns).ok()
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
