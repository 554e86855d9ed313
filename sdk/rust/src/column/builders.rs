//! Builders that make string, binary and list-of-string columns one value
//! at a time.

use super::buffers::ValidityBuilder;
use super::{Column, ListItems};
use crate::DataType;

// ---------------------------------------------------------------- var-width builders

/// Shared core of the string/binary builders.
#[derive(Debug)]
struct VarBuilder {
    offsets: Vec<u8>,
    values: Vec<u8>,
    valid: ValidityBuilder,
}

impl VarBuilder {
    fn new() -> Self {
        VarBuilder {
            offsets: 0i32.to_le_bytes().to_vec(),
            values: Vec::new(),
            valid: ValidityBuilder::default(),
        }
    }
    #[inline]
    fn push(&mut self, v: Option<&[u8]>) {
        if let Some(v) = v {
            self.values.extend_from_slice(v);
        }
        self.valid.push(v.is_some());
        self.offsets
            .extend_from_slice(&(self.values.len() as i32).to_le_bytes());
    }
    fn finish(self, data_type: DataType) -> Column {
        Column {
            data_type,
            len: self.valid.len,
            validity: self.valid.finish(),
            offsets: self.offsets,
            values: self.values,
            items: None,
        }
    }
}

/// Builds a `Utf8` column one value at a time.
#[derive(Debug)]
pub struct StringBuilder(VarBuilder);

impl StringBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        StringBuilder(VarBuilder::new())
    }
    /// An empty builder with room for `rows` values of `bytes` total bytes.
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut b = VarBuilder::new();
        b.offsets.reserve(rows * 4);
        b.values.reserve(bytes);
        StringBuilder(b)
    }
    /// Appends a value (`None` = null).
    #[inline]
    pub fn push(&mut self, v: Option<&str>) {
        self.0.push(v.map(str::as_bytes));
    }
    /// Appends a non-null value.
    #[inline]
    pub fn push_str(&mut self, v: &str) {
        self.0.push(Some(v.as_bytes()));
    }
    /// Number of values so far.
    pub fn len(&self) -> usize {
        self.0.valid.len
    }
    /// Whether no value was pushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The finished column.
    pub fn finish(self) -> Column {
        self.0.finish(DataType::Utf8)
    }
}

impl Default for StringBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a `Binary` column one value at a time.
#[derive(Debug)]
pub struct BinaryBuilder(VarBuilder);

impl BinaryBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        BinaryBuilder(VarBuilder::new())
    }
    /// Appends a value (`None` = null).
    #[inline]
    pub fn push(&mut self, v: Option<&[u8]>) {
        self.0.push(v);
    }
    /// Number of values so far.
    pub fn len(&self) -> usize {
        self.0.valid.len
    }
    /// Whether no value was pushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The finished column.
    pub fn finish(self) -> Column {
        self.0.finish(DataType::Binary)
    }
}

impl Default for BinaryBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a `ListUtf8` column: push items, then close each list.
#[derive(Debug)]
pub struct ListUtf8Builder {
    offsets: Vec<u8>,
    valid: ValidityBuilder,
    items: VarBuilder,
}

impl ListUtf8Builder {
    /// An empty builder.
    pub fn new() -> Self {
        ListUtf8Builder {
            offsets: 0i32.to_le_bytes().to_vec(),
            valid: ValidityBuilder::default(),
            items: VarBuilder::new(),
        }
    }
    /// Appends an item to the list being built.
    #[inline]
    pub fn push_item(&mut self, item: Option<&str>) {
        self.items.push(item.map(str::as_bytes));
    }
    /// Closes the current list (made of the items pushed since the last
    /// close); `valid = false` makes it a null list (its items are dropped
    /// from view but should normally be none).
    pub fn end_list(&mut self, valid: bool) {
        self.valid.push(valid);
        self.offsets
            .extend_from_slice(&(self.items.valid.len as i32).to_le_bytes());
    }
    /// Appends a whole list (`None` = null list).
    pub fn push<'a, I: IntoIterator<Item = Option<&'a str>>>(&mut self, list: Option<I>) {
        let valid = list.is_some();
        for item in list.into_iter().flatten() {
            self.push_item(item);
        }
        self.end_list(valid);
    }
    /// Appends a null list.
    pub fn push_null(&mut self) {
        self.end_list(false);
    }
    /// Number of lists so far.
    pub fn len(&self) -> usize {
        self.valid.len
    }
    /// Whether no list was closed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The finished column.
    pub fn finish(self) -> Column {
        Column {
            data_type: DataType::ListUtf8,
            len: self.valid.len,
            validity: self.valid.finish(),
            offsets: self.offsets,
            values: Vec::new(),
            items: Some(Box::new(ListItems {
                validity: self.items.valid.finish(),
                offsets: self.items.offsets,
                values: self.items.values,
            })),
        }
    }
}

impl Default for ListUtf8Builder {
    fn default() -> Self {
        Self::new()
    }
}
