//! Validated read views over string, binary and list-of-string columns.

use std::borrow::Cow;

use super::buffers::{bitmap_len, cast_or_copy, check_offsets, get_bit};
use crate::Error;

// ---------------------------------------------------------------- views

/// A validated view of utf8 data: offsets checked, UTF-8 checked once.
#[derive(Debug, Clone)]
pub struct StrView<'a> {
    offsets: Cow<'a, [i32]>,
    values: &'a str,
    validity: Option<&'a [u8]>,
    len: usize,
}

impl<'a> StrView<'a> {
    pub(super) fn new(
        offsets: &'a [u8],
        values: &'a [u8],
        validity: Option<&'a [u8]>,
        len: usize,
    ) -> Result<Self, Error> {
        // The offsets and validity checks of a binary view, then UTF-8.
        let BinaryView {
            offsets,
            values,
            validity,
            len,
        } = BinaryView::new(offsets, values, validity, len)?;
        let values = std::str::from_utf8(values)
            .map_err(|e| Error::invalid_input(format!("invalid UTF-8: {e}")))?;
        if !offsets.iter().all(|&o| values.is_char_boundary(o as usize)) {
            return Err(Error::invalid_input("utf8 offset inside a character"));
        }
        Ok(StrView {
            offsets,
            values,
            validity,
            len,
        })
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Value `i`; `None` if null or out of range.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a str> {
        if i >= self.len || self.validity.is_some_and(|v| !get_bit(v, i)) {
            return None;
        }
        let values: &'a str = self.values;
        // Offsets were checked to be in bounds, ordered and on char boundaries.
        values.get(self.offsets[i] as usize..self.offsets[i + 1] as usize)
    }
    /// Iterates over the values.
    pub fn iter(&self) -> StrIter<'a> {
        self.clone().into_iter()
    }
}

impl<'a> IntoIterator for StrView<'a> {
    type Item = Option<&'a str>;
    type IntoIter = StrIter<'a>;
    fn into_iter(self) -> StrIter<'a> {
        StrIter { view: self, i: 0 }
    }
}

/// Iterator over a [`StrView`].
#[derive(Debug, Clone)]
pub struct StrIter<'a> {
    view: StrView<'a>,
    i: usize,
}

impl<'a> Iterator for StrIter<'a> {
    type Item = Option<&'a str>;
    #[inline]
    fn next(&mut self) -> Option<Option<&'a str>> {
        if self.i >= self.view.len {
            return None;
        }
        self.i += 1;
        Some(self.view.get(self.i - 1))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.view.len - self.i;
        (n, Some(n))
    }
}

impl ExactSizeIterator for StrIter<'_> {}

/// A checked view of a `Binary` column.
#[derive(Debug, Clone)]
pub struct BinaryView<'a> {
    offsets: Cow<'a, [i32]>,
    values: &'a [u8],
    validity: Option<&'a [u8]>,
    len: usize,
}

impl<'a> BinaryView<'a> {
    pub(super) fn new(
        offsets: &'a [u8],
        values: &'a [u8],
        validity: Option<&'a [u8]>,
        len: usize,
    ) -> Result<Self, Error> {
        let offsets = cast_or_copy::<i32>(offsets, len + 1)?;
        check_offsets(&offsets, values.len())?;
        if validity.is_some_and(|v| v.len() < bitmap_len(len)) {
            return Err(Error::invalid_input("validity bitmap too short"));
        }
        Ok(BinaryView {
            offsets,
            values,
            validity,
            len,
        })
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Value `i`; `None` if null or out of range.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        if i >= self.len || self.validity.is_some_and(|v| !get_bit(v, i)) {
            return None;
        }
        let values: &'a [u8] = self.values;
        values.get(self.offsets[i] as usize..self.offsets[i + 1] as usize)
    }
}

/// A checked view of a `ListUtf8` column.
#[derive(Debug, Clone)]
pub struct ListUtf8View<'a> {
    pub(super) offsets: Cow<'a, [i32]>,
    pub(super) items: StrView<'a>,
    pub(super) validity: Option<&'a [u8]>,
    pub(super) len: usize,
}

impl<'a> ListUtf8View<'a> {
    /// Number of lists.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// List `i`; `None` if null or out of range.
    pub fn get(&self, i: usize) -> Option<ListValue<'_, 'a>> {
        if i >= self.len || self.validity.is_some_and(|v| !get_bit(v, i)) {
            return None;
        }
        Some(ListValue {
            items: &self.items,
            start: self.offsets[i] as usize,
            end: self.offsets[i + 1] as usize,
        })
    }
    /// Iterates over the lists.
    pub fn iter(&self) -> impl Iterator<Item = Option<ListValue<'_, 'a>>> + '_ {
        (0..self.len).map(|i| self.get(i))
    }
}

/// One list of a [`ListUtf8View`].
#[derive(Debug, Clone, Copy)]
pub struct ListValue<'v, 'a> {
    items: &'v StrView<'a>,
    start: usize,
    end: usize,
}

impl<'v, 'a> ListValue<'v, 'a> {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    /// Item `j` (`None` if null or out of range).
    pub fn get(&self, j: usize) -> Option<&'a str> {
        (j < self.len())
            .then(|| self.items.get(self.start + j))
            .flatten()
    }
    /// Iterates over the items.
    pub fn iter(&self) -> impl Iterator<Item = Option<&'a str>> + use<'v, 'a> {
        let items = self.items;
        (self.start..self.end).map(move |j| items.get(j))
    }
}
