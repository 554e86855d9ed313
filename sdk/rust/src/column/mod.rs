//! Columns: typed read access to Arrow buffers, and builders for new columns.
//!
//! Reading: fixed-width columns are read whole with [`Column::f64_values`]
//! and friends (zero-copy when the buffer is aligned, else one bulk copy);
//! strings, binaries and lists through views ([`Column::utf8`],
//! [`Column::binary`], [`Column::list_utf8`]) or per-row accessors.
//! Nulls are reported by [`Column::is_valid`] / [`Column::validity`].
//!
//! Building: `Column::from(vec)` for `Vec<T>` / `Vec<Option<T>>` of every
//! primitive, `bool`, `&str`/`String`, `Vec<u8>`/`&[u8]`;
//! [`Column::from_values_with_validity`] to reuse a validity bitmap;
//! [`Column::timestamps`]; [`StringBuilder`], [`BinaryBuilder`] and
//! [`ListUtf8Builder`] for streaming construction.

use std::borrow::Cow;

use crate::{DataType, Error, TimeUnit};

mod buffers;
mod builders;
mod views;

use buffers::{ValidityBuilder, check_offsets, read_i32, truncate_bits};
pub(crate) use buffers::{bitmap_len, cast_or_copy, count_ones, get_bit, to_le_bytes};
pub use builders::{BinaryBuilder, ListUtf8Builder, StringBuilder};
pub use views::{BinaryView, ListUtf8View, ListValue, StrIter, StrView};

/// Items of a `list-utf8` column, in Arrow's utf8 layout.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListItems {
    /// Validity bitmap of the items; `None` = no null items.
    pub validity: Option<Vec<u8>>,
    /// `i32` little-endian offsets into `values`, items + 1 entries.
    pub offsets: Vec<u8>,
    /// Concatenated UTF-8 bytes of all items.
    pub values: Vec<u8>,
}

/// One column: its type, length and Arrow buffers (owned, little-endian).
///
/// Equality compares buffers byte for byte.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    data_type: DataType,
    len: usize,
    validity: Option<Vec<u8>>,
    offsets: Vec<u8>,
    values: Vec<u8>,
    items: Option<Box<ListItems>>,
}

/// Fixed-width number types stored little-endian in a column's value buffer.
pub trait Primitive: Copy + Default + sealed::Sealed + 'static {
    /// The column type built from a `Vec<Self>`.
    const DATA_TYPE: DataType;
}
impl Primitive for i32 {
    const DATA_TYPE: DataType = DataType::Int32;
}
impl Primitive for i64 {
    const DATA_TYPE: DataType = DataType::Int64;
}
impl Primitive for f32 {
    const DATA_TYPE: DataType = DataType::Float32;
}
impl Primitive for f64 {
    const DATA_TYPE: DataType = DataType::Float64;
}
mod sealed {
    pub trait Sealed {
        fn from_le(b: &[u8]) -> Self;
    }
    macro_rules! imp {
        ($($t:ty),*) => {$(impl Sealed for $t {
            fn from_le(b: &[u8]) -> Self { <$t>::from_le_bytes(b.try_into().unwrap()) }
        })*};
    }
    imp!(i32, i64, f32, f64);
}

// ---------------------------------------------------------------- column

impl Column {
    /// Assembles a column from raw Arrow buffers (layout as in the WIT
    /// `column` record). Checks only that buffers are long enough.
    pub fn from_raw_parts(
        data_type: DataType,
        len: usize,
        validity: Option<Vec<u8>>,
        offsets: Vec<u8>,
        values: Vec<u8>,
        items: Option<ListItems>,
    ) -> Result<Self, Error> {
        if validity.as_ref().is_some_and(|v| v.len() < bitmap_len(len)) {
            return Err(Error::invalid_input("validity bitmap too short"));
        }
        let ok = match &data_type {
            DataType::Boolean => values.len() >= bitmap_len(len),
            DataType::Utf8 | DataType::Binary => offsets.len() >= (len + 1) * 4,
            DataType::ListUtf8 => offsets.len() >= (len + 1) * 4 && items.is_some(),
            dt => values.len() >= len * dt.byte_width().unwrap(),
        };
        if !ok {
            return Err(Error::invalid_input(format!(
                "buffers too short for {len} {data_type:?} values"
            )));
        }
        Ok(Column {
            data_type,
            len,
            validity,
            offsets,
            values,
            items: items.map(Box::new),
        })
    }

    /// Raw parts without checks (used for columns coming from the host).
    #[doc(hidden)]
    pub fn from_raw_parts_unchecked(
        data_type: DataType,
        len: usize,
        validity: Option<Vec<u8>>,
        offsets: Vec<u8>,
        values: Vec<u8>,
        items: Option<ListItems>,
    ) -> Self {
        Column {
            data_type,
            len,
            validity,
            offsets,
            values,
            items: items.map(Box::new),
        }
    }

    /// Splits the column into `(data_type, len, validity, offsets, values, items)`.
    #[allow(clippy::type_complexity)]
    pub fn into_raw_parts(
        self,
    ) -> (
        DataType,
        usize,
        Option<Vec<u8>>,
        Vec<u8>,
        Vec<u8>,
        Option<ListItems>,
    ) {
        (
            self.data_type,
            self.len,
            self.validity,
            self.offsets,
            self.values,
            self.items.map(|b| *b),
        )
    }

    /// The column's type.
    pub fn data_type(&self) -> &DataType {
        &self.data_type
    }
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Validity bitmap (LSB first, 1 = valid); `None` when there are no nulls.
    pub fn validity(&self) -> Option<&[u8]> {
        self.validity.as_deref()
    }
    /// Whether row `i` is non-null (`false` when out of range).
    #[inline]
    pub fn is_valid(&self, i: usize) -> bool {
        i < self.len && self.validity.as_ref().is_none_or(|v| get_bit(v, i))
    }
    /// Whether row `i` is null.
    #[inline]
    pub fn is_null(&self, i: usize) -> bool {
        !self.is_valid(i)
    }
    /// Number of null rows.
    pub fn null_count(&self) -> usize {
        self.validity
            .as_ref()
            .map_or(0, |v| self.len - count_ones(v, self.len))
    }
    /// The raw value buffer.
    pub fn values_bytes(&self) -> &[u8] {
        &self.values
    }
    /// The raw offsets buffer (variable-width types).
    pub fn offsets_bytes(&self) -> &[u8] {
        &self.offsets
    }

    fn expect(&self, ok: bool, want: &str) -> Result<(), Error> {
        if ok {
            Ok(())
        } else {
            Err(Error::invalid_input(format!(
                "expected a {want} column, found {:?}",
                self.data_type
            )))
        }
    }

    /// All values of a fixed-width column of type `T` (null slots hold
    /// unspecified values: check [`Column::validity`]).
    pub fn values<T: Primitive>(&self) -> Result<Cow<'_, [T]>, Error> {
        self.expect(
            self.data_type == T::DATA_TYPE,
            &format!("{:?}", T::DATA_TYPE),
        )?;
        cast_or_copy(&self.values, self.len)
    }
    /// All values of a `Float64` column (see [`Column::values`]).
    pub fn f64_values(&self) -> Result<Cow<'_, [f64]>, Error> {
        self.values()
    }
    /// All values of a `Float32` column.
    pub fn f32_values(&self) -> Result<Cow<'_, [f32]>, Error> {
        self.values()
    }
    /// All values of an `Int32` column.
    pub fn i32_values(&self) -> Result<Cow<'_, [i32]>, Error> {
        self.values()
    }
    /// All values of an `Int64` column.
    pub fn i64_values(&self) -> Result<Cow<'_, [i64]>, Error> {
        self.values()
    }
    /// All values of a `Timestamp` column, in its unit.
    pub fn timestamp_values(&self) -> Result<Cow<'_, [i64]>, Error> {
        self.expect(
            matches!(self.data_type, DataType::Timestamp { .. }),
            "Timestamp",
        )?;
        cast_or_copy(&self.values, self.len)
    }
    /// Value of row `i` of a fixed-width column of type `T` (timestamps
    /// read as `i64`); `None` if null, out of range or of another type.
    #[inline]
    pub fn value<T: Primitive>(&self, i: usize) -> Option<T> {
        let ok = self.data_type == T::DATA_TYPE
            || (T::DATA_TYPE == DataType::Int64
                && matches!(self.data_type, DataType::Timestamp { .. }));
        if !ok || !self.is_valid(i) {
            return None;
        }
        let w = std::mem::size_of::<T>();
        self.values.get(i * w..(i + 1) * w).map(T::from_le)
    }
    /// Row `i` of a `Float64` column (see [`Column::value`]).
    pub fn f64_value(&self, i: usize) -> Option<f64> {
        self.value(i)
    }
    /// Row `i` of a `Float32` column.
    pub fn f32_value(&self, i: usize) -> Option<f32> {
        self.value(i)
    }
    /// Row `i` of an `Int32` column.
    pub fn i32_value(&self, i: usize) -> Option<i32> {
        self.value(i)
    }
    /// Row `i` of an `Int64` column.
    pub fn i64_value(&self, i: usize) -> Option<i64> {
        (self.data_type == DataType::Int64)
            .then(|| self.value(i))
            .flatten()
    }
    /// Row `i` of a `Timestamp` column, in its unit.
    pub fn timestamp_value(&self, i: usize) -> Option<i64> {
        matches!(self.data_type, DataType::Timestamp { .. })
            .then(|| self.value(i))
            .flatten()
    }
    /// Numeric column converted to `f64` (accepts Float64, Float32, Int32,
    /// Int64); borrowed for Float64.
    pub fn as_f64_values(&self) -> Result<Cow<'_, [f64]>, Error> {
        Ok(match self.data_type {
            DataType::Float64 => self.f64_values()?,
            DataType::Float32 => Cow::Owned(self.f32_values()?.iter().map(|v| *v as f64).collect()),
            DataType::Int32 => Cow::Owned(self.i32_values()?.iter().map(|v| *v as f64).collect()),
            DataType::Int64 => Cow::Owned(self.i64_values()?.iter().map(|v| *v as f64).collect()),
            _ => {
                return self
                    .expect(false, "numeric")
                    .map(|_| Cow::Borrowed(&[][..]));
            }
        })
    }

    /// Value of row `i` of a `Boolean` column; `None` if null, out of
    /// range or not a boolean column.
    pub fn bool_value(&self, i: usize) -> Option<bool> {
        (self.data_type == DataType::Boolean && self.is_valid(i)).then(|| {
            self.values
                .get(i >> 3)
                .is_some_and(|b| b & (1 << (i & 7)) != 0)
        })
    }
    /// Iterates over a `Boolean` column.
    pub fn bools(&self) -> Result<impl Iterator<Item = Option<bool>> + '_, Error> {
        self.expect(self.data_type == DataType::Boolean, "Boolean")?;
        if self.values.len() < bitmap_len(self.len) {
            return Err(Error::invalid_input("boolean buffer too short"));
        }
        Ok((0..self.len).map(|i| self.is_valid(i).then(|| get_bit(&self.values, i))))
    }

    fn var_slice(&self, i: usize) -> Option<&[u8]> {
        if !self.is_valid(i) {
            return None;
        }
        let (s, e) = (read_i32(&self.offsets, i)?, read_i32(&self.offsets, i + 1)?);
        self.values
            .get(usize::try_from(s).ok()?..usize::try_from(e).ok()?)
    }
    /// Row `i` of a `Utf8` column; `None` if null, out of range, not utf8
    /// or malformed.
    pub fn str_value(&self, i: usize) -> Option<&str> {
        if self.data_type != DataType::Utf8 {
            return None;
        }
        std::str::from_utf8(self.var_slice(i)?).ok()
    }
    /// Row `i` of a `Binary` column; `None` if null, out of range or not binary.
    pub fn binary_value(&self, i: usize) -> Option<&[u8]> {
        if self.data_type != DataType::Binary {
            return None;
        }
        self.var_slice(i)
    }
    /// Row `i` of a `ListUtf8` column as its items; `None` if the list is null.
    pub fn list_value(&self, i: usize) -> Option<Vec<Option<&str>>> {
        let view = self.list_utf8().ok()?;
        view.get(i).map(|l| l.iter().collect())
    }

    /// A validated view of a `Utf8` column (one UTF-8 check for the whole column).
    pub fn utf8(&self) -> Result<StrView<'_>, Error> {
        self.expect(self.data_type == DataType::Utf8, "Utf8")?;
        StrView::new(
            &self.offsets,
            &self.values,
            self.validity.as_deref(),
            self.len,
        )
    }
    /// Iterates over the strings of a `Utf8` column.
    pub fn strs(&self) -> Result<StrIter<'_>, Error> {
        Ok(self.utf8()?.into_iter())
    }
    /// A view of a `Binary` column.
    pub fn binary(&self) -> Result<BinaryView<'_>, Error> {
        self.expect(self.data_type == DataType::Binary, "Binary")?;
        BinaryView::new(
            &self.offsets,
            &self.values,
            self.validity.as_deref(),
            self.len,
        )
    }
    /// Iterates over the byte strings of a `Binary` column.
    pub fn binaries(&self) -> Result<impl Iterator<Item = Option<&[u8]>> + '_, Error> {
        let v = self.binary()?;
        Ok((0..self.len).map(move |i| v.get(i)))
    }
    /// A view of a `ListUtf8` column.
    pub fn list_utf8(&self) -> Result<ListUtf8View<'_>, Error> {
        self.expect(self.data_type == DataType::ListUtf8, "ListUtf8")?;
        let items = self
            .items
            .as_deref()
            .ok_or_else(|| Error::invalid_input("list column without items"))?;
        let offsets = cast_or_copy::<i32>(&self.offsets, self.len + 1)?;
        let n_items = offsets.last().copied().unwrap_or(0).max(0) as usize;
        let items = StrView::new(
            &items.offsets,
            &items.values,
            items.validity.as_deref(),
            n_items,
        )?;
        check_offsets(&offsets, n_items)?;
        Ok(ListUtf8View {
            offsets,
            items,
            validity: self.validity.as_deref(),
            len: self.len,
        })
    }

    /// Keeps the first `len` rows (no-op if `len >= self.len()`).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        if let Some(v) = &mut self.validity {
            truncate_bits(v, len);
        }
        match &self.data_type {
            DataType::Boolean => truncate_bits(&mut self.values, len),
            DataType::Utf8 | DataType::Binary => {
                let end = read_i32(&self.offsets, len).unwrap_or(0).max(0) as usize;
                self.offsets.truncate((len + 1) * 4);
                self.values.truncate(end);
            }
            DataType::ListUtf8 => {
                let n = read_i32(&self.offsets, len).unwrap_or(0).max(0) as usize;
                self.offsets.truncate((len + 1) * 4);
                if let Some(items) = &mut self.items {
                    let end = read_i32(&items.offsets, n).unwrap_or(0).max(0) as usize;
                    if let Some(v) = &mut items.validity {
                        truncate_bits(v, n);
                    }
                    items.offsets.truncate((n + 1) * 4);
                    items.values.truncate(end);
                }
            }
            dt => {
                let w = dt.byte_width().unwrap();
                self.values.truncate(len * w);
            }
        }
        self.len = len;
    }

    // ------------------------------------------------------------ builders

    /// A column of `T` values without nulls (one bulk copy).
    pub fn from_values<T: Primitive>(values: Vec<T>) -> Self {
        Column {
            data_type: T::DATA_TYPE,
            len: values.len(),
            validity: None,
            offsets: Vec::new(),
            values: to_le_bytes(&values),
            items: None,
        }
    }
    /// A column of `T` values with a validity bitmap (e.g. another column's,
    /// to propagate nulls). Fails if the bitmap is too short.
    pub fn from_values_with_validity<T: Primitive>(
        values: Vec<T>,
        validity: Option<Vec<u8>>,
    ) -> Result<Self, Error> {
        let mut c = Self::from_values(values);
        c.set_validity(validity)?;
        Ok(c)
    }
    /// A column of nullable `T` values.
    pub fn from_options<T: Primitive>(values: Vec<Option<T>>) -> Self {
        let mut valid = ValidityBuilder::with_capacity(values.len());
        let plain: Vec<T> = values
            .iter()
            .map(|v| {
                valid.push(v.is_some());
                v.unwrap_or_default()
            })
            .collect();
        let mut c = Self::from_values(plain);
        c.validity = valid.finish();
        c
    }
    /// A timestamp column: `values` in `unit`, with an optional validity bitmap.
    pub fn timestamps(
        values: Vec<i64>,
        validity: Option<Vec<u8>>,
        unit: TimeUnit,
        timezone: Option<String>,
    ) -> Result<Self, Error> {
        let mut c = Self::from_values_with_validity(values, validity)?;
        c.data_type = DataType::Timestamp { unit, timezone };
        Ok(c)
    }
    /// A timestamp column from nullable values.
    pub fn timestamps_opt(
        values: Vec<Option<i64>>,
        unit: TimeUnit,
        timezone: Option<String>,
    ) -> Self {
        let mut c = Self::from_options(values);
        c.data_type = DataType::Timestamp { unit, timezone };
        c
    }
    /// A boolean column from (possibly null) values.
    pub fn from_bools<I: IntoIterator<Item = Option<bool>>>(values: I) -> Self {
        let iter = values.into_iter();
        let mut valid = ValidityBuilder::with_capacity(iter.size_hint().0);
        let mut bits = ValidityBuilder::with_capacity(iter.size_hint().0);
        for v in iter {
            valid.push(v.is_some());
            bits.push(v == Some(true));
        }
        let len = bits.len;
        Column {
            data_type: DataType::Boolean,
            len,
            validity: valid.finish(),
            offsets: Vec::new(),
            values: bits.bits,
            items: None,
        }
    }
    /// Replaces the validity bitmap (`None` = no nulls). Fails if too short.
    pub fn set_validity(&mut self, validity: Option<Vec<u8>>) -> Result<(), Error> {
        if validity
            .as_ref()
            .is_some_and(|v| v.len() < bitmap_len(self.len))
        {
            return Err(Error::invalid_input(format!(
                "validity bitmap too short for {} rows",
                self.len
            )));
        }
        self.validity = validity;
        Ok(())
    }
    /// Builder method form of [`Column::set_validity`].
    pub fn with_validity(mut self, validity: Option<Vec<u8>>) -> Result<Self, Error> {
        self.set_validity(validity)?;
        Ok(self)
    }
    /// A `Utf8` column from (possibly null) strings.
    pub fn from_strs<'a, I: IntoIterator<Item = Option<&'a str>>>(values: I) -> Self {
        let mut b = StringBuilder::new();
        for v in values {
            b.push(v);
        }
        b.finish()
    }
    /// A `Binary` column from (possibly null) byte strings.
    pub fn from_binaries<'a, I: IntoIterator<Item = Option<&'a [u8]>>>(values: I) -> Self {
        let mut b = BinaryBuilder::new();
        for v in values {
            b.push(v);
        }
        b.finish()
    }
}

impl<T: Primitive> From<Vec<T>> for Column {
    fn from(v: Vec<T>) -> Self {
        Column::from_values(v)
    }
}
impl<T: Primitive> From<Vec<Option<T>>> for Column {
    fn from(v: Vec<Option<T>>) -> Self {
        Column::from_options(v)
    }
}
impl From<Vec<bool>> for Column {
    fn from(v: Vec<bool>) -> Self {
        Column::from_bools(v.into_iter().map(Some))
    }
}
impl From<Vec<Option<bool>>> for Column {
    fn from(v: Vec<Option<bool>>) -> Self {
        Column::from_bools(v)
    }
}
impl From<Vec<&str>> for Column {
    fn from(v: Vec<&str>) -> Self {
        Column::from_strs(v.into_iter().map(Some))
    }
}
impl From<Vec<String>> for Column {
    fn from(v: Vec<String>) -> Self {
        Column::from_strs(v.iter().map(|s| Some(s.as_str())))
    }
}
impl From<Vec<Option<&str>>> for Column {
    fn from(v: Vec<Option<&str>>) -> Self {
        Column::from_strs(v)
    }
}
impl From<Vec<Option<String>>> for Column {
    fn from(v: Vec<Option<String>>) -> Self {
        Column::from_strs(v.iter().map(|s| s.as_deref()))
    }
}
impl From<Vec<&[u8]>> for Column {
    fn from(v: Vec<&[u8]>) -> Self {
        Column::from_binaries(v.into_iter().map(Some))
    }
}
impl From<Vec<Vec<u8>>> for Column {
    fn from(v: Vec<Vec<u8>>) -> Self {
        Column::from_binaries(v.iter().map(|s| Some(s.as_slice())))
    }
}
impl From<Vec<Option<Vec<u8>>>> for Column {
    fn from(v: Vec<Option<Vec<u8>>>) -> Self {
        Column::from_binaries(v.iter().map(|s| s.as_deref()))
    }
}
