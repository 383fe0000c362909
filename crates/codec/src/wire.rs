//! The MQTT data representations (§1.5): integers, variable byte integers,
//! UTF-8 strings, binary data.
//!
//! Owns reading them from one frame ([`Reader`]) and writing them to any
//! [`Sink`]: a [`Counter`] that only adds up lengths, or a `BytesMut`. The
//! encoder runs the same code against both, so the length it announces and
//! the bytes it writes cannot disagree. This module must not know about
//! packet types; it must never copy binary data out of a frame (a `Bytes`
//! slice shares the read buffer) and never trust a length the peer sent.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};

/// The largest value a variable byte integer (and so a remaining length) holds.
pub(super) const MAX_VAR_INT: u32 = 268_435_455;

/// Reads the fields of one frame that is already complete in memory.
///
/// Running past the end is [`DecodeError::Truncated`]: the remaining length
/// the peer announced was too short for the fields it sent.
pub(super) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(super) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn need(&self, len: usize) -> Result<(), DecodeError> {
        if self.buf.len() < len {
            Err(DecodeError::Truncated)
        } else {
            Ok(())
        }
    }

    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    pub(super) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    /// A variable byte integer of at most four bytes.
    pub(super) fn var_int(&mut self) -> Result<u32, DecodeError> {
        match parse_var_int(&self.buf) {
            VarInt::Complete { value, len } => {
                self.buf.advance(len);
                Ok(value)
            }
            VarInt::Incomplete => Err(DecodeError::Truncated),
            VarInt::TooLong => Err(DecodeError::VariableByteIntegerTooLong),
        }
    }

    /// The next `len` bytes as a slice of the frame (no copy).
    pub(super) fn take(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        self.need(len)?;
        Ok(self.buf.split_to(len))
    }

    /// Everything left in the frame (no copy).
    pub(super) fn rest(&mut self) -> Bytes {
        self.buf.split_off(0)
    }

    /// Binary data: a two-byte length then that many bytes (no copy).
    pub(super) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16()?);
        self.take(len)
    }

    /// A UTF-8 encoded string, checked and handed to `convert` without an
    /// intermediate copy (PUBLISH topics go straight into an `Arc<str>`).
    pub(super) fn str_with<T>(
        &mut self,
        convert: impl FnOnce(&str) -> T,
    ) -> Result<T, DecodeError> {
        let len = usize::from(self.u16()?);
        self.need(len)?;
        let text = std::str::from_utf8(&self.buf[..len]).map_err(|_| DecodeError::InvalidUtf8)?;
        if text.contains('\0') {
            return Err(DecodeError::NulInString);
        }
        let value = convert(text);
        self.buf.advance(len);
        Ok(value)
    }

    pub(super) fn string(&mut self) -> Result<String, DecodeError> {
        self.str_with(|text| text.to_owned())
    }

    /// Fails with [`DecodeError::TrailingBytes`] if anything is left.
    pub(super) fn finish(&self, packet: &'static str) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                packet,
                count: self.buf.len(),
            })
        }
    }
}

/// The outcome of reading a variable byte integer from the front of a slice.
pub(super) enum VarInt {
    Complete {
        value: u32,
        len: usize,
    },
    /// The slice ends before the integer does.
    Incomplete,
    /// The fourth byte still has its continuation bit set.
    TooLong,
}

/// Reads a variable byte integer from the front of `bytes` without consuming.
pub(super) fn parse_var_int(bytes: &[u8]) -> VarInt {
    let mut value: u32 = 0;
    for (index, byte) in bytes.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            return VarInt::Complete {
                value,
                len: index + 1,
            };
        }
    }
    if bytes.len() >= 4 {
        VarInt::TooLong
    } else {
        VarInt::Incomplete
    }
}

/// How many bytes the variable byte integer `value` takes.
pub(super) fn var_int_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Where the encoder writes: a length counter or a buffer.
pub(super) trait Sink {
    fn put_u8(&mut self, value: u8);
    fn put_u16(&mut self, value: u16);
    fn put_u32(&mut self, value: u32);
    fn put_slice(&mut self, value: &[u8]);

    /// A variable byte integer; above [`MAX_VAR_INT`] is an error.
    fn put_var_int(&mut self, value: u32) -> Result<(), EncodeError> {
        if value > MAX_VAR_INT {
            return Err(EncodeError::VariableByteIntegerTooLarge { value });
        }
        let mut rest = value;
        loop {
            // Masked to seven bits, so the cast cannot truncate.
            let mut byte = (rest & 0x7F) as u8;
            rest >>= 7;
            if rest > 0 {
                byte |= 0x80;
            }
            self.put_u8(byte);
            if rest == 0 {
                return Ok(());
            }
        }
    }

    /// A UTF-8 encoded string with its two-byte length.
    fn put_string(&mut self, value: &str) -> Result<(), EncodeError> {
        let len = u16::try_from(value.len())
            .map_err(|_| EncodeError::StringTooLong { len: value.len() })?;
        self.put_u16(len);
        self.put_slice(value.as_bytes());
        Ok(())
    }

    /// Binary data with its two-byte length.
    fn put_binary(&mut self, value: &[u8]) -> Result<(), EncodeError> {
        let len = u16::try_from(value.len())
            .map_err(|_| EncodeError::BinaryTooLong { len: value.len() })?;
        self.put_u16(len);
        self.put_slice(value);
        Ok(())
    }
}

/// A sink that only counts bytes, to size a packet before writing it.
#[derive(Default)]
pub(super) struct Counter(pub(super) usize);

impl Sink for Counter {
    fn put_u8(&mut self, _: u8) {
        self.0 += 1;
    }
    fn put_u16(&mut self, _: u16) {
        self.0 += 2;
    }
    fn put_u32(&mut self, _: u32) {
        self.0 += 4;
    }
    fn put_slice(&mut self, value: &[u8]) {
        self.0 += value.len();
    }
    fn put_var_int(&mut self, value: u32) -> Result<(), EncodeError> {
        if value > MAX_VAR_INT {
            return Err(EncodeError::VariableByteIntegerTooLarge { value });
        }
        self.0 += var_int_len(value as usize);
        Ok(())
    }
}

impl Sink for BytesMut {
    fn put_u8(&mut self, value: u8) {
        BufMut::put_u8(self, value);
    }
    fn put_u16(&mut self, value: u16) {
        BufMut::put_u16(self, value);
    }
    fn put_u32(&mut self, value: u32) {
        BufMut::put_u32(self, value);
    }
    fn put_slice(&mut self, value: &[u8]) {
        BufMut::put_slice(self, value);
    }
}
