//! Buffer helpers shared by columns, builders, views and selections:
//! LSB-first bitmaps, validity building, little-endian casts, offsets checks.

use std::borrow::Cow;

use super::Primitive;
use crate::Error;

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
pub(super) fn truncate_bits(bits: &mut Vec<u8>, n: usize) {
    bits.truncate(bitmap_len(n));
    if !n.is_multiple_of(8)
        && let Some(last) = bits.last_mut()
    {
        *last &= (1u8 << (n % 8)) - 1;
    }
}

/// Builds a validity bitmap; yields `None` when nothing was null.
#[derive(Debug, Default)]
pub(super) struct ValidityBuilder {
    pub(super) bits: Vec<u8>,
    pub(super) len: usize,
    nulls: usize,
}

impl ValidityBuilder {
    pub(super) fn with_capacity(n: usize) -> Self {
        ValidityBuilder {
            bits: Vec::with_capacity(bitmap_len(n)),
            len: 0,
            nulls: 0,
        }
    }
    #[inline]
    pub(super) fn push(&mut self, valid: bool) {
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
    pub(super) fn finish(self) -> Option<Vec<u8>> {
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
pub(super) fn read_i32(bytes: &[u8], i: usize) -> Option<i32> {
    bytes
        .get(i * 4..i * 4 + 4)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
}

/// Checks an offsets buffer of `n + 1` entries against `values_len`.
pub(super) fn check_offsets(offsets: &[i32], values_len: usize) -> Result<(), Error> {
    let mut prev = 0i32;
    for &o in offsets {
        if o < prev || o as usize > values_len {
            return Err(Error::invalid_input("invalid offsets buffer"));
        }
        prev = o;
    }
    Ok(())
}
