//! The scanner's column builders: plain vectors turned into Arrow arrays
//! without a copy (`Buffer::from_vec`). Arrow's own builders cost a few
//! allocations and an `ArrayData` validation per column and batch, and
//! allocate a fresh buffer when finished; on small batches (one record per
//! call) those fixed costs were most of the decode.

use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{
    ArrayRef, BooleanArray, ListArray, PrimitiveArray, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, FieldRef, TimeUnit};
use std::sync::Arc;

/// Validity of a column: materialised only once a null arrives.
#[derive(Default)]
pub(super) struct Validity {
    bits: Option<BooleanBufferBuilder>,
    len: usize,
}

impl Validity {
    /// Records one row, valid or null.
    #[inline]
    pub fn push(&mut self, valid: bool) {
        match &mut self.bits {
            Some(bits) => bits.append(valid),
            None if valid => {}
            None => {
                let mut bits = BooleanBufferBuilder::new(self.len.max(8) * 2);
                bits.append_n(self.len, true);
                bits.append(false);
                self.bits = Some(bits);
            }
        }
        self.len += 1;
    }

    fn finish(self) -> Option<NullBuffer> {
        self.bits.map(|mut bits| NullBuffer::new(bits.finish()))
    }
}

/// UTF-8 strings in Arrow's layout: `i32` offsets into the value bytes.
pub(super) struct Strings {
    offsets: Vec<i32>,
    values: Vec<u8>,
    validity: Validity,
}

impl Strings {
    fn with_capacity(rows: usize, bytes: usize) -> Strings {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Strings { offsets, values: Vec::with_capacity(bytes), validity: Validity::default() }
    }

    /// Appends a string; `None` when the values outgrow `i32` offsets
    /// (arrow-json fails such a batch too).
    #[inline]
    pub fn push(&mut self, value: &str) -> Option<()> {
        self.values.extend_from_slice(value.as_bytes());
        self.offsets.push(i32::try_from(self.values.len()).ok()?);
        self.validity.push(true);
        Some(())
    }

    /// Appends a null string.
    #[inline]
    pub fn push_null(&mut self) {
        self.offsets.push(*self.offsets.last().expect("one offset at least"));
        self.validity.push(false);
    }

    fn finish(self) -> StringArray {
        // SAFETY: offsets start at 0, never decrease, end at values.len(), and
        // every pushed value is a whole `&str`, so each slice is valid UTF-8.
        unsafe {
            StringArray::new_unchecked(
                OffsetBuffer::new_unchecked(ScalarBuffer::from(self.offsets)),
                Buffer::from_vec(self.values),
                self.validity.finish(),
            )
        }
    }
}

/// A column being built.
pub(super) enum Column {
    Bool(BooleanBufferBuilder, Validity),
    Int32(Vec<i32>, Validity),
    Int64(Vec<i64>, Validity),
    Float32(Vec<f32>, Validity),
    Float64(Vec<f64>, Validity),
    Utf8(Strings),
    /// Lists of strings: list offsets into the items.
    List { offsets: Vec<i32>, items: Strings, validity: Validity },
    /// A field checked against its type (parsed exactly as if built) but not
    /// built: the decoder validates the whole schema and outputs a projection.
    Check(Check),
}

/// The type a checked-only field is parsed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    Utf8,
    List,
}

impl Check {
    /// How a value of `data_type` is checked.
    pub fn of(data_type: &DataType) -> Check {
        match data_type {
            DataType::Boolean => Check::Bool,
            DataType::Int32 => Check::Int32,
            DataType::Int64 | DataType::Timestamp(..) => Check::Int64,
            DataType::Float32 => Check::Float32,
            DataType::Float64 => Check::Float64,
            DataType::List(_) => Check::List,
            _ => Check::Utf8,
        }
    }
}

impl Column {
    /// An empty column for `rows` rows of the given type (string columns
    /// reserve `bytes` of values).
    pub fn new(data_type: &DataType, rows: usize, bytes: usize) -> Column {
        match data_type {
            DataType::Boolean => Column::Bool(BooleanBufferBuilder::new(rows), Validity::default()),
            DataType::Int32 => Column::Int32(Vec::with_capacity(rows), Validity::default()),
            DataType::Int64 | DataType::Timestamp(..) => Column::Int64(Vec::with_capacity(rows), Validity::default()),
            DataType::Float32 => Column::Float32(Vec::with_capacity(rows), Validity::default()),
            DataType::Float64 => Column::Float64(Vec::with_capacity(rows), Validity::default()),
            DataType::List(_) => {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                Column::List { offsets, items: Strings::with_capacity(rows, 0), validity: Validity::default() }
            }
            _ => Column::Utf8(Strings::with_capacity(rows, bytes)),
        }
    }

    /// Appends a null.
    pub fn push_null(&mut self) {
        match self {
            Column::Bool(values, validity) => {
                values.append(false);
                validity.push(false);
            }
            Column::Int32(values, validity) => {
                values.push(0);
                validity.push(false);
            }
            Column::Int64(values, validity) => {
                values.push(0);
                validity.push(false);
            }
            Column::Float32(values, validity) => {
                values.push(0.0);
                validity.push(false);
            }
            Column::Float64(values, validity) => {
                values.push(0.0);
                validity.push(false);
            }
            Column::Utf8(strings) => strings.push_null(),
            Column::List { offsets, validity, .. } => {
                offsets.push(*offsets.last().expect("one offset at least"));
                validity.push(false);
            }
            Column::Check(_) => {}
        }
    }

    /// Ends the current list (after its items were pushed); `None` when the
    /// items outgrow `i32` offsets.
    pub fn end_list(offsets: &mut Vec<i32>, items: &Strings, validity: &mut Validity) -> Option<()> {
        offsets.push(i32::try_from(items.offsets.len() - 1).ok()?);
        validity.push(true);
        Some(())
    }

    /// The Arrow array, typed as `data_type` (timestamps keep their unit and
    /// zone; a list keeps its item field); `None` for a checked-only field.
    pub fn finish(self, data_type: &DataType) -> Option<ArrayRef> {
        Some(match self {
            Column::Bool(mut values, validity) => Arc::new(BooleanArray::new(values.finish(), validity.finish())),
            Column::Int32(values, validity) => Arc::new(PrimitiveArray::<Int32Type>::new(ScalarBuffer::from(values), validity.finish())),
            Column::Int64(values, validity) => {
                let (values, nulls) = (ScalarBuffer::from(values), validity.finish());
                match data_type {
                    DataType::Timestamp(unit, zone) => {
                        let zone = zone.clone();
                        match unit {
                            TimeUnit::Second => Arc::new(TimestampSecondArray::new(values, nulls).with_timezone_opt(zone)),
                            TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::new(values, nulls).with_timezone_opt(zone)),
                            TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::new(values, nulls).with_timezone_opt(zone)),
                            TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::new(values, nulls).with_timezone_opt(zone)),
                        }
                    }
                    _ => Arc::new(PrimitiveArray::<Int64Type>::new(values, nulls)),
                }
            }
            Column::Float32(values, validity) => Arc::new(PrimitiveArray::<Float32Type>::new(ScalarBuffer::from(values), validity.finish())),
            Column::Float64(values, validity) => Arc::new(PrimitiveArray::<Float64Type>::new(ScalarBuffer::from(values), validity.finish())),
            Column::Utf8(strings) => Arc::new(strings.finish()),
            Column::List { offsets, items, validity } => {
                let DataType::List(field) = data_type else { return None };
                let field: FieldRef = field.clone();
                Arc::new(ListArray::try_new(field, OffsetBuffer::new(ScalarBuffer::from(offsets)), Arc::new(items.finish()), validity.finish()).ok()?)
            }
            Column::Check(_) => return None,
        })
    }
}
