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

// ---------------------------------------------------------------- bitmaps

/// Bit `i` of an LSB-first bitmap.
#[inline(always)]
pub(crate) fn get_bit(bits: &[u8], i: usize) -> bool {
    bits[i >> 3] & (1 << (i & 7)) != 0
}

/// Number of bytes holding `n` bits.
#[inline(always)]
pub(crate) fn bitmap_len(n: usize) -> usize {
    n.div_ceil(8)
}

/// Counts set bits among the first `n` bits.
pub(crate) fn count_ones(bits: &[u8], n: usize) -> usize {
    let full = n / 8;
    let mut c: usize = bits[..full].iter().map(|b| b.count_ones() as usize).sum();
    if !n.is_multiple_of(8) {
        c += (bits[full] & ((1u8 << (n % 8)) - 1)).count_ones() as usize;
    }
    c
}

/// Truncates a bitmap to `n` bits, clearing the unused bits of the last byte.
fn truncate_bits(bits: &mut Vec<u8>, n: usize) {
    bits.truncate(bitmap_len(n));
    if !n.is_multiple_of(8)
        && let Some(last) = bits.last_mut()
    {
        *last &= (1u8 << (n % 8)) - 1;
    }
}

/// Builds a validity bitmap; yields `None` when nothing was null.
#[derive(Debug, Default)]
struct ValidityBuilder {
    bits: Vec<u8>,
    len: usize,
    nulls: usize,
}

impl ValidityBuilder {
    fn with_capacity(n: usize) -> Self {
        ValidityBuilder {
            bits: Vec::with_capacity(bitmap_len(n)),
            len: 0,
            nulls: 0,
        }
    }
    #[inline]
    fn push(&mut self, valid: bool) {
        if self.len.is_multiple_of(8) {
            self.bits.push(0);
        }
        if valid {
            *self.bits.last_mut().unwrap() |= 1 << (self.len % 8);
        } else {
            self.nulls += 1;
        }
        self.len += 1;
    }
    fn finish(self) -> Option<Vec<u8>> {
        (self.nulls > 0).then_some(self.bits)
    }
}

// ---------------------------------------------------------------- casting

/// Reinterprets `n` little-endian values at the start of `bytes`: borrowed
/// when aligned (on little-endian targets), else one bulk copy.
pub(crate) fn cast_or_copy<T: Primitive>(bytes: &[u8], n: usize) -> Result<Cow<'_, [T]>, Error> {
    let size = std::mem::size_of::<T>();
    let need = n
        .checked_mul(size)
        .filter(|need| *need <= bytes.len())
        .ok_or_else(|| Error::invalid_input(format!("value buffer too short for {n} values")))?;
    if n == 0 {
        return Ok(Cow::Borrowed(&[]));
    }
    let bytes = &bytes[..need];
    #[cfg(target_endian = "little")]
    {
        if (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
            // SAFETY: `T` is a plain number valid for any bit pattern, the
            // pointer is aligned for `T` and `n * size_of::<T>()` bytes are in bounds.
            return Ok(Cow::Borrowed(unsafe {
                std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), n)
            }));
        }
        let mut v: Vec<T> = Vec::with_capacity(n);
        // SAFETY: capacity is `n` values = `need` bytes; any bit pattern is a valid `T`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), need);
            v.set_len(n);
        }
        Ok(Cow::Owned(v))
    }
    #[cfg(not(target_endian = "little"))]
    Ok(Cow::Owned(
        bytes.chunks_exact(size).map(T::from_le).collect(),
    ))
}

/// The little-endian bytes of `values` (one bulk copy).
pub(crate) fn to_le_bytes<T: Primitive>(values: &[T]) -> Vec<u8> {
    #[cfg(target_endian = "little")]
    {
        let n = std::mem::size_of_val(values);
        // SAFETY: plain numbers without padding; reading them as bytes is fine.
        unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), n) }.to_vec()
    }
    #[cfg(not(target_endian = "little"))]
    {
        compile_error!("weir-sdk supports little-endian targets only")
    }
}

#[inline(always)]
fn read_i32(bytes: &[u8], i: usize) -> Option<i32> {
    bytes
        .get(i * 4..i * 4 + 4)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
}

/// Checks an offsets buffer of `n + 1` entries against `values_len`.
fn check_offsets(offsets: &[i32], values_len: usize) -> Result<(), Error> {
    let mut prev = 0i32;
    for &o in offsets {
        if o < prev || o as usize > values_len {
            return Err(Error::invalid_input("invalid offsets buffer"));
        }
        prev = o;
    }
    Ok(())
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
    fn new(
        offsets: &'a [u8],
        values: &'a [u8],
        validity: Option<&'a [u8]>,
        len: usize,
    ) -> Result<Self, Error> {
        let offsets = cast_or_copy::<i32>(offsets, len + 1)?;
        check_offsets(&offsets, values.len())?;
        let values = std::str::from_utf8(values)
            .map_err(|e| Error::invalid_input(format!("invalid UTF-8: {e}")))?;
        if !offsets.iter().all(|&o| values.is_char_boundary(o as usize)) {
            return Err(Error::invalid_input("utf8 offset inside a character"));
        }
        if validity.is_some_and(|v| v.len() < bitmap_len(len)) {
            return Err(Error::invalid_input("validity bitmap too short"));
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
    fn new(
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
    offsets: Cow<'a, [i32]>,
    items: StrView<'a>,
    validity: Option<&'a [u8]>,
    len: usize,
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
