//! Row selections returned by filters: one bit per row, LSB first, 1 = keep.

use crate::column::{bitmap_len, count_ones, get_bit};

/// Which rows a filter keeps, as an Arrow-style bitmap of `ceil(n / 8)` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    bits: Vec<u8>,
    len: usize,
}

impl Selection {
    /// Keeps every row.
    pub fn all(len: usize) -> Self {
        let mut bits = vec![0xff; bitmap_len(len)];
        if !len.is_multiple_of(8) {
            *bits.last_mut().unwrap() = (1u8 << (len % 8)) - 1;
        }
        Selection { bits, len }
    }
    /// Keeps no row.
    pub fn none(len: usize) -> Self {
        Selection {
            bits: vec![0; bitmap_len(len)],
            len,
        }
    }
    /// Keeps row `i` when `keep(i)`; packs eight rows per byte without
    /// per-row allocation.
    #[inline]
    pub fn from_fn(len: usize, mut keep: impl FnMut(usize) -> bool) -> Self {
        let mut bits = Vec::with_capacity(bitmap_len(len));
        let full = len / 8;
        for byte in 0..full {
            let base = byte * 8;
            let mut b = 0u8;
            for j in 0..8 {
                b |= (keep(base + j) as u8) << j;
            }
            bits.push(b);
        }
        if !len.is_multiple_of(8) {
            let mut b = 0u8;
            for j in 0..len % 8 {
                b |= (keep(full * 8 + j) as u8) << j;
            }
            bits.push(b);
        }
        Selection { bits, len }
    }
    /// Keeps the rows whose value satisfies `keep` — the fast path for
    /// "column compared with a constant" (combine with
    /// [`Selection::and_validity`] to drop nulls).
    #[inline]
    pub fn from_values<T>(values: &[T], mut keep: impl FnMut(&T) -> bool) -> Self {
        let mut bits = Vec::with_capacity(bitmap_len(values.len()));
        let mut chunks = values.chunks_exact(8);
        for chunk in &mut chunks {
            let mut b = 0u8;
            for (j, v) in chunk.iter().enumerate() {
                b |= (keep(v) as u8) << j;
            }
            bits.push(b);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = 0u8;
            for (j, v) in rest.iter().enumerate() {
                b |= (keep(v) as u8) << j;
            }
            bits.push(b);
        }
        Selection {
            bits,
            len: values.len(),
        }
    }
    /// Keeps row `i` when the `i`-th item is true.
    pub fn from_bools(iter: impl IntoIterator<Item = bool>) -> Self {
        let mut bits = Vec::new();
        let mut len = 0;
        for keep in iter {
            if len % 8 == 0 {
                bits.push(0);
            }
            if keep {
                *bits.last_mut().unwrap() |= 1 << (len % 8);
            }
            len += 1;
        }
        Selection { bits, len }
    }
    /// Wraps an existing bitmap; `None` if it is not `ceil(len / 8)` bytes.
    /// Bits past `len` are cleared.
    pub fn from_bitmap(mut bits: Vec<u8>, len: usize) -> Option<Self> {
        if bits.len() != bitmap_len(len) {
            return None;
        }
        if !len.is_multiple_of(8) {
            *bits.last_mut().unwrap() &= (1u8 << (len % 8)) - 1;
        }
        Some(Selection { bits, len })
    }
    /// Also drops rows that are null in `validity` (a column's
    /// [`crate::Column::validity`]; `None` = no nulls).
    pub fn and_validity(mut self, validity: Option<&[u8]>) -> Self {
        if let Some(v) = validity {
            for (b, v) in self.bits.iter_mut().zip(v) {
                *b &= *v;
            }
        }
        self
    }
    /// Keeps rows selected by both.
    pub fn and(mut self, other: &Selection) -> Self {
        for (b, o) in self.bits.iter_mut().zip(&other.bits) {
            *b &= *o;
        }
        self
    }
    /// Keeps rows selected by either.
    pub fn or(mut self, other: &Selection) -> Self {
        for (b, o) in self.bits.iter_mut().zip(&other.bits) {
            *b |= *o;
        }
        self
    }
    /// Inverts the selection.
    pub fn invert(mut self) -> Self {
        for b in &mut self.bits {
            *b = !*b;
        }
        Selection::from_bitmap(self.bits, self.len).unwrap()
    }
    /// Sets whether row `i` is kept. Panics if out of range.
    pub fn set(&mut self, i: usize, keep: bool) {
        assert!(i < self.len, "row {i} out of range");
        if keep {
            self.bits[i >> 3] |= 1 << (i & 7);
        } else {
            self.bits[i >> 3] &= !(1 << (i & 7));
        }
    }
    /// Whether row `i` is kept (`false` if out of range).
    pub fn get(&self, i: usize) -> bool {
        i < self.len && get_bit(&self.bits, i)
    }
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Number of kept rows.
    pub fn count(&self) -> usize {
        count_ones(&self.bits, self.len)
    }
    /// The bitmap.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }
    /// The bitmap, `ceil(len / 8)` bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bits
    }
}
