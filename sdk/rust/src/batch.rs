//! Record batches: a schema ([`Field`]s) plus one [`Column`] per field.

use std::sync::Arc;

use crate::{Column, Error};

/// Resolution of a timestamp column's 64-bit values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// Seconds since the Unix epoch.
    Second,
    /// Milliseconds since the Unix epoch.
    Millisecond,
    /// Microseconds since the Unix epoch.
    Microsecond,
    /// Nanoseconds since the Unix epoch.
    Nanosecond,
}

/// Logical type of a column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DataType {
    /// Bit-packed booleans.
    Boolean,
    /// 32-bit signed integers.
    Int32,
    /// 64-bit signed integers.
    Int64,
    /// 32-bit floats.
    Float32,
    /// 64-bit floats.
    Float64,
    /// UTF-8 strings.
    Utf8,
    /// Byte strings.
    Binary,
    /// 64-bit timestamps in `unit`, displayed in `timezone` (none = naive).
    Timestamp {
        /// Resolution of the stored values.
        unit: TimeUnit,
        /// IANA name or `+hh:mm`; `None` means no time zone.
        timezone: Option<String>,
    },
    /// Lists of (nullable) UTF-8 strings.
    ListUtf8,
}

impl DataType {
    /// Width in bytes of one value for fixed-width types (`None` for
    /// booleans and variable-width types).
    pub fn byte_width(&self) -> Option<usize> {
        match self {
            DataType::Int32 | DataType::Float32 => Some(4),
            DataType::Int64 | DataType::Float64 | DataType::Timestamp { .. } => Some(8),
            _ => None,
        }
    }
}

/// One column of a schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    /// Column name, unique within the batch.
    pub name: String,
    /// Logical type.
    pub data_type: DataType,
    /// Whether the column may hold nulls.
    pub nullable: bool,
}

impl Field {
    /// A new field.
    pub fn new(name: impl Into<String>, data_type: DataType, nullable: bool) -> Self {
        Field {
            name: name.into(),
            data_type,
            nullable,
        }
    }
}

/// A record batch: fields and columns in the same order, all `num_rows` long.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// Shared with the schema a host declared once (packed batches, contract
    /// 0.1.2); copied on the first change.
    fields: Arc<Vec<Field>>,
    columns: Vec<Column>,
    num_rows: usize,
}

impl Batch {
    /// Builds a batch, checking that there is one column per field, that
    /// each column has its field's type, that all columns have the same
    /// length and that non-nullable fields hold no nulls. A batch without
    /// columns has zero rows (see [`Batch::empty`]).
    pub fn new(fields: Vec<Field>, columns: Vec<Column>) -> Result<Self, Error> {
        let num_rows = columns.first().map_or(0, Column::len);
        Self::with_rows(fields, columns, num_rows)
    }

    /// A batch with no columns and `num_rows` rows.
    pub fn empty(num_rows: usize) -> Self {
        Batch {
            fields: Arc::default(),
            columns: Vec::new(),
            num_rows,
        }
    }

    fn with_rows(fields: Vec<Field>, columns: Vec<Column>, num_rows: usize) -> Result<Self, Error> {
        if fields.len() != columns.len() {
            return Err(Error::invalid_input(format!(
                "{} fields but {} columns",
                fields.len(),
                columns.len()
            )));
        }
        for (i, (f, c)) in fields.iter().zip(&columns).enumerate() {
            check_column(f, c, num_rows)?;
            if fields[..i].iter().any(|g| g.name == f.name) {
                return Err(Error::invalid_input(format!(
                    "duplicate column `{}`",
                    f.name
                )));
            }
        }
        Ok(Batch {
            fields: Arc::new(fields),
            columns,
            num_rows,
        })
    }

    /// Builds a batch without any checks. The caller promises the
    /// invariants [`Batch::new`] checks (used for batches from the host).
    pub fn new_unchecked(fields: Vec<Field>, columns: Vec<Column>, num_rows: usize) -> Self {
        Self::shared_unchecked(Arc::new(fields), columns, num_rows)
    }

    /// As [`Batch::new_unchecked`], with fields shared with other batches
    /// (a schema the host declared once).
    pub(crate) fn shared_unchecked(fields: Arc<Vec<Field>>, columns: Vec<Column>, num_rows: usize) -> Self {
        Batch {
            fields,
            columns,
            num_rows,
        }
    }

    /// Appends a column (moving it, no copy). Fails on a length or type
    /// mismatch or a duplicate name.
    pub fn with_column(mut self, field: Field, column: Column) -> Result<Self, Error> {
        let rows = if self.columns.is_empty() && self.num_rows == 0 {
            column.len()
        } else {
            self.num_rows
        };
        check_column(&field, &column, rows)?;
        if self.index_of(&field.name).is_some() {
            return Err(Error::invalid_input(format!(
                "duplicate column `{}`",
                field.name
            )));
        }
        self.num_rows = rows;
        Arc::make_mut(&mut self.fields).push(field);
        self.columns.push(column);
        Ok(self)
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.num_rows
    }
    /// Number of columns.
    pub fn num_columns(&self) -> usize {
        self.columns.len()
    }
    /// The schema.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }
    /// The columns, in schema order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }
    /// Position of the column called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
    /// The field called `name`, if any.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
    /// The column called `name`; [`Error::InvalidInput`] when missing.
    pub fn column(&self, name: &str) -> Result<&Column, Error> {
        self.index_of(name)
            .map(|i| &self.columns[i])
            .ok_or_else(|| Error::invalid_input(format!("missing column `{name}`")))
    }
    /// The column called `name`, if any.
    pub fn get_column(&self, name: &str) -> Option<&Column> {
        self.index_of(name).map(|i| &self.columns[i])
    }
    /// Iterates over `(field, column)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&Field, &Column)> {
        self.fields.iter().zip(&self.columns)
    }
    /// Removes and returns the column called `name`.
    pub fn remove_column(&mut self, name: &str) -> Result<(Field, Column), Error> {
        let i = self
            .index_of(name)
            .ok_or_else(|| Error::invalid_input(format!("missing column `{name}`")))?;
        Ok((Arc::make_mut(&mut self.fields).remove(i), self.columns.remove(i)))
    }
    /// Keeps the first `len` rows of every column (no-op if `len >= num_rows`).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.num_rows {
            return;
        }
        for c in &mut self.columns {
            c.truncate(len);
        }
        self.num_rows = len;
    }
    /// Splits the batch into its fields and columns (moved, no copy; the
    /// fields are copied when shared with a declared schema).
    pub fn into_parts(self) -> (Vec<Field>, Vec<Column>, usize) {
        (Arc::unwrap_or_clone(self.fields), self.columns, self.num_rows)
    }
}

fn check_column(f: &Field, c: &Column, num_rows: usize) -> Result<(), Error> {
    if c.len() != num_rows {
        return Err(Error::invalid_input(format!(
            "column `{}` has {} rows, expected {num_rows}",
            f.name,
            c.len()
        )));
    }
    if c.data_type() != &f.data_type {
        return Err(Error::invalid_input(format!(
            "column `{}` is {:?} but its field says {:?}",
            f.name,
            c.data_type(),
            f.data_type
        )));
    }
    if !f.nullable && c.null_count() > 0 {
        return Err(Error::invalid_input(format!(
            "column `{}` is not nullable but holds nulls",
            f.name
        )));
    }
    Ok(())
}
