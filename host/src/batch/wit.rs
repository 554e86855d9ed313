//! Arrow <-> WIT `batch`: each column's Arrow buffers are handed to the guest
//! as byte lists (one bulk copy per buffer into guest memory, straight from
//! the Arrow buffer) and guest results become Arrow arrays again after full
//! validation (lengths, offsets, UTF-8), since a guest may return anything.

use super::BatchError;
use crate::bindings::weir::operator::types as wit;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, make_array};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer};
use arrow_data::{ArrayData, ArrayDataBuilder, transform::MutableArrayData};
use arrow_schema::{DataType, Field, FieldRef, Schema, TimeUnit};
use std::sync::Arc;

/// A batch prepared for a guest call: the selected columns, normalised so
/// their buffers start at row 0, ready to be borrowed as a WIT batch.
pub struct GuestBatch {
    fields: Vec<FieldRef>,
    columns: Vec<ArrayData>,
    num_rows: usize,
}

impl GuestBatch {
    /// Prepares `batch`, keeping only the columns named in `reads` (all when none).
    pub fn new(batch: &RecordBatch, reads: Option<&[String]>) -> Result<GuestBatch, BatchError> {
        // One pass in schema order, without an index list: this runs once
        // per guest call, and at one row per call it is a fifth of the call.
        let schema = batch.schema_ref();
        let capacity = reads.map_or(batch.num_columns(), <[String]>::len);
        let mut fields = Vec::with_capacity(capacity);
        let mut columns = Vec::with_capacity(capacity);
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            if reads.is_some_and(|names| !names.iter().any(|name| name == field.name())) {
                continue;
            }
            check_supported(field)?;
            fields.push(field.clone());
            columns.push(normalise(column.to_data()));
        }
        if let Some(names) = reads
            && fields.len() < names.len()
            && let Some(missing) = names.iter().find(|name| schema.index_of(name).is_err())
        {
            return Err(BatchError::MissingColumn(missing.clone()));
        }
        Ok(GuestBatch { fields, columns, num_rows: batch.num_rows() })
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// The batch's fields (the columns the guest gets), in order.
    pub fn fields(&self) -> &[FieldRef] {
        &self.fields
    }

    /// Calls `f` with the batch borrowed in the WIT layout (no copies: the
    /// guest call lowers each byte slice straight into guest memory).
    pub fn with_wit<R>(&self, f: impl FnOnce(wit::BatchParam<'_>) -> R) -> R {
        let schema = self.wit_schema();
        let columns: Vec<wit::ColumnParam<'_>> = self.columns.iter().map(wit_column).collect();
        f(wit::BatchParam { schema: &schema, columns: &columns, num_rows: self.num_rows as u32 })
    }

    /// The schema in the WIT layout (what `schemas.declare-schema` gets).
    pub fn wit_schema(&self) -> Vec<wit::FieldParam<'_>> {
        self.fields
            .iter()
            .map(|field| wit::FieldParam {
                name: field.name().as_str(),
                data_type: wit_type(field.data_type()),
                nullable: field.is_nullable(),
            })
            .collect()
    }

    /// Bytes of the column buffers a guest call carries.
    pub fn buffer_bytes(&self) -> usize {
        self.columns.iter().map(|data| column_buffers(&wit_column(data)).map(<[u8]>::len).sum::<usize>()).sum()
    }

    /// Packs the column buffers into `buffers` and their (start, length)
    /// pairs into `layout`, as a WIT `packed-batch` carries them (contract
    /// 0.1.2): per column validity, offsets and values, then a `list-utf8`
    /// column's item buffers; each buffer starts at a multiple of 8.
    pub fn pack(&self, buffers: &mut Vec<u8>, layout: &mut Vec<u32>) {
        buffers.clear();
        layout.clear();
        for data in &self.columns {
            for bytes in column_buffers(&wit_column(data)) {
                let start = buffers.len().next_multiple_of(8);
                buffers.resize(start, 0);
                buffers.extend_from_slice(bytes);
                // A guest batch is far below 4 GiB (the packed path is for small batches).
                layout.extend([start as u32, bytes.len() as u32]);
            }
        }
    }
}

/// A column's buffers in packed order: validity (empty when none), offsets,
/// values, then for `list-utf8` the items' validity, offsets and values.
fn column_buffers<'a>(column: &wit::ColumnParam<'a>) -> impl Iterator<Item = &'a [u8]> + use<'a> {
    let own = [column.validity.unwrap_or_default(), column.offsets, column.values];
    let items = column.items.as_ref().map(|items| [items.validity.unwrap_or_default(), items.offsets, items.values]);
    own.into_iter().chain(items.into_iter().flatten())
}

fn check_supported(field: &Field) -> Result<(), BatchError> {
    let ok = match field.data_type() {
        DataType::Boolean
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Utf8
        | DataType::Binary
        | DataType::Timestamp(_, _) => true,
        DataType::List(item) => item.data_type() == &DataType::Utf8,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(BatchError::UnsupportedType { column: field.name().clone(), data_type: field.data_type().to_string() })
    }
}

/// Whether the array's buffers already start at row 0 (including offsets
/// that start at 0), so they can be passed as they are.
fn is_compact(data: &ArrayData) -> bool {
    // A sliced array may keep offset 0 but a validity bitmap with a bit offset.
    if data.offset() != 0 || data.nulls().is_some_and(|nulls| nulls.offset() != 0) {
        return false;
    }
    match data.data_type() {
        DataType::Utf8 | DataType::Binary => first_offset(data) == 0,
        DataType::List(_) => first_offset(data) == 0 && is_compact(&data.child_data()[0]),
        _ => true,
    }
}

fn first_offset(data: &ArrayData) -> i32 {
    data.buffers()[0].typed_data::<i32>().first().copied().unwrap_or(0)
}

fn normalise(data: ArrayData) -> ArrayData {
    if is_compact(&data) {
        return data;
    }
    let len = data.len();
    let mut copy = MutableArrayData::new(vec![&data], false, len);
    copy.extend(0, 0, len);
    copy.freeze()
}

fn wit_type(data_type: &DataType) -> wit::DataTypeParam<'_> {
    match data_type {
        DataType::Boolean => wit::DataTypeParam::Boolean,
        DataType::Int32 => wit::DataTypeParam::Int32,
        DataType::Int64 => wit::DataTypeParam::Int64,
        DataType::Float32 => wit::DataTypeParam::Float32,
        DataType::Float64 => wit::DataTypeParam::Float64,
        DataType::Utf8 => wit::DataTypeParam::Utf8,
        DataType::Binary => wit::DataTypeParam::Binary,
        DataType::Timestamp(unit, tz) => wit::DataTypeParam::Timestamp(wit::TimestampTypeParam {
            unit: match unit {
                TimeUnit::Second => wit::TimeUnit::Second,
                TimeUnit::Millisecond => wit::TimeUnit::Millisecond,
                TimeUnit::Microsecond => wit::TimeUnit::Microsecond,
                TimeUnit::Nanosecond => wit::TimeUnit::Nanosecond,
            },
            timezone: tz.as_deref(),
        }),
        DataType::List(_) => wit::DataTypeParam::ListUtf8,
        other => unreachable!("checked by check_supported: {other}"),
    }
}

/// Bytes needed for a bitmap of `len` bits.
fn bitmap_len(len: usize) -> usize {
    len.div_ceil(8)
}

fn validity(data: &ArrayData) -> Option<&[u8]> {
    let nulls = data.nulls()?;
    if nulls.null_count() == 0 {
        return None;
    }
    Some(&nulls.buffer().as_slice()[..bitmap_len(data.len())])
}

fn wit_column(data: &ArrayData) -> wit::ColumnParam<'_> {
    let len = data.len();
    let empty: &[u8] = &[];
    match data.data_type() {
        DataType::Boolean => wit::ColumnParam {
            validity: validity(data),
            offsets: empty,
            values: &data.buffers()[0].as_slice()[..bitmap_len(len)],
            items: None,
        },
        DataType::Utf8 | DataType::Binary => wit::ColumnParam {
            validity: validity(data),
            offsets: &data.buffers()[0].as_slice()[..(len + 1) * 4],
            values: value_bytes(data, len),
            items: None,
        },
        DataType::List(_) => {
            let child = &data.child_data()[0];
            let item_count = data.buffers()[0].typed_data::<i32>().get(len).copied().unwrap_or(0) as usize;
            wit::ColumnParam {
                validity: validity(data),
                offsets: &data.buffers()[0].as_slice()[..(len + 1) * 4],
                values: empty,
                items: Some(wit::ListItemsParam {
                    validity: validity(child),
                    offsets: &child.buffers()[0].as_slice()[..(item_count + 1) * 4],
                    values: value_bytes(child, item_count),
                }),
            }
        }
        data_type => {
            let width = data_type.primitive_width().expect("fixed-width type");
            wit::ColumnParam {
                validity: validity(data),
                offsets: empty,
                values: &data.buffers()[0].as_slice()[..len * width],
                items: None,
            }
        }
    }
}

/// The value bytes of a utf8/binary array with `len` rows (offsets from 0).
fn value_bytes(data: &ArrayData, len: usize) -> &[u8] {
    let end = data.buffers()[0].typed_data::<i32>().get(len).copied().unwrap_or(0) as usize;
    &data.buffers()[1].as_slice()[..end]
}

/// Bytes of the buffers (validity, offsets, values, list items) a guest's
/// batch carries: what building Arrow arrays from it would copy.
pub fn guest_batch_bytes(batch: &wit::BatchResult) -> u64 {
    batch
        .columns
        .iter()
        .map(|c| {
            let items = c.items.as_ref().map_or(0, |i| i.validity.as_ref().map_or(0, Vec::len) + i.offsets.len() + i.values.len());
            (c.validity.as_ref().map_or(0, Vec::len) + c.offsets.len() + c.values.len() + items) as u64
        })
        .sum()
}

/// Builds an Arrow batch from a guest's WIT batch, validating everything.
pub fn batch_from_guest(batch: wit::BatchResult) -> Result<RecordBatch, BatchError> {
    let wit::BatchResult { schema, columns, num_rows } = batch;
    let num_rows = num_rows as usize;
    if schema.len() != columns.len() {
        return Err(invalid(format!("schema has {} fields but {} columns were returned", schema.len(), columns.len())));
    }
    let mut fields = Vec::with_capacity(schema.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.len());
    for (field, column) in schema.into_iter().zip(columns) {
        let data_type = arrow_type(&field.data_type);
        // Checked here, where the guest is to blame, rather than when the
        // output is encoded (which would stop the pipeline).
        if let DataType::Timestamp(_, Some(tz)) = &data_type
            && let Err(error) = tz.parse::<arrow_array::timezone::Tz>()
        {
            return Err(invalid(format!("column `{}`: time zone `{tz}`: {error}", field.name)));
        }
        let data = column_data(&field.name, data_type.clone(), column, num_rows)?;
        if !field.nullable && data.null_count() > 0 {
            return Err(invalid(format!("column `{}` is declared non-nullable but has nulls", field.name)));
        }
        fields.push(Field::new(field.name, data_type, field.nullable));
        arrays.push(make_array(data));
    }
    let schema = Arc::new(Schema::new(fields));
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(num_rows));
    RecordBatch::try_new_with_options(schema, arrays, &options).map_err(|e| invalid(e.to_string()))
}

fn invalid(reason: String) -> BatchError {
    BatchError::InvalidGuestBatch(reason)
}

fn arrow_type(data_type: &wit::DataTypeResult) -> DataType {
    match data_type {
        wit::DataTypeResult::Boolean => DataType::Boolean,
        wit::DataTypeResult::Int32 => DataType::Int32,
        wit::DataTypeResult::Int64 => DataType::Int64,
        wit::DataTypeResult::Float32 => DataType::Float32,
        wit::DataTypeResult::Float64 => DataType::Float64,
        wit::DataTypeResult::Utf8 => DataType::Utf8,
        wit::DataTypeResult::Binary => DataType::Binary,
        wit::DataTypeResult::Timestamp(ts) => DataType::Timestamp(
            match ts.unit {
                wit::TimeUnit::Second => TimeUnit::Second,
                wit::TimeUnit::Millisecond => TimeUnit::Millisecond,
                wit::TimeUnit::Microsecond => TimeUnit::Microsecond,
                wit::TimeUnit::Nanosecond => TimeUnit::Nanosecond,
            },
            ts.timezone.as_deref().map(Arc::from),
        ),
        wit::DataTypeResult::ListUtf8 => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
    }
}

fn null_buffer(name: &str, validity: Option<Vec<u8>>, len: usize) -> Result<Option<NullBuffer>, BatchError> {
    let Some(bits) = validity else { return Ok(None) };
    if bits.len() < bitmap_len(len) {
        return Err(invalid(format!(
            "column `{name}`: validity bitmap has {} bytes, {len} rows need {}",
            bits.len(),
            bitmap_len(len)
        )));
    }
    let nulls = NullBuffer::new(BooleanBuffer::new(Buffer::from_vec(bits), 0, len));
    Ok((nulls.null_count() > 0).then_some(nulls))
}

fn column_data(
    name: &str,
    data_type: DataType,
    column: wit::ColumnResult,
    len: usize,
) -> Result<ArrayData, BatchError> {
    let wit::ColumnResult { validity, offsets, values, items } = column;
    let nulls = null_buffer(name, validity, len)?;
    let builder = ArrayDataBuilder::new(data_type.clone()).len(len).nulls(nulls);
    let builder = match &data_type {
        DataType::Utf8 | DataType::Binary => {
            builder.add_buffer(Buffer::from_vec(offsets)).add_buffer(Buffer::from_vec(values))
        }
        DataType::List(item_field) => {
            let items = items.ok_or_else(|| invalid(format!("column `{name}`: list-utf8 column without items")))?;
            let item_count = read_last_offset(&offsets, len)
                .ok_or_else(|| invalid(format!("column `{name}`: offsets too short for {len} rows")))?;
            let child_nulls = null_buffer(name, items.validity, item_count)?;
            let child = ArrayDataBuilder::new(item_field.data_type().clone())
                .len(item_count)
                .nulls(child_nulls)
                .add_buffer(Buffer::from_vec(items.offsets))
                .add_buffer(Buffer::from_vec(items.values))
                .align_buffers(true)
                .build()
                .map_err(|e| invalid(format!("column `{name}` items: {e}")))?;
            builder.add_buffer(Buffer::from_vec(offsets)).add_child_data(child)
        }
        _ => builder.add_buffer(Buffer::from_vec(values)),
    };
    builder.align_buffers(true).build().map_err(|e| invalid(format!("column `{name}`: {e}")))
}

fn read_last_offset(offsets: &[u8], len: usize) -> Option<usize> {
    let bytes = offsets.get(len * 4..len * 4 + 4)?;
    let value = i32::from_le_bytes(bytes.try_into().ok()?);
    usize::try_from(value).ok()
}

/// Turns a filter's selection bitmap into a boolean mask for Arrow's filter
/// kernel, checking its length.
pub fn selection_to_mask(selection: Vec<u8>, num_rows: usize) -> Result<BooleanArray, String> {
    if selection.len() != bitmap_len(num_rows) {
        return Err(format!(
            "selection has {} bytes, {num_rows} rows need {}",
            selection.len(),
            bitmap_len(num_rows)
        ));
    }
    Ok(BooleanArray::new(BooleanBuffer::new(Buffer::from_vec(selection), 0, num_rows), None))
}
