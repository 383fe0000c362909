//! The device's key and certificate in a flash partition of their own
//! (`fleetmq`, data subtype `undefined`, 8 KiB: firmware/partitions.csv), written
//! so that a reset during a write never loses the identity the device has.
//!
//! The partition holds two slots of one 4 KiB sector each. A slot holds one
//! record:
//!
//! ```text
//! offset  size  field
//! 0       4     magic "FMQI"
//! 4       1     format version (1)
//! 5       3     zero
//! 8       4     sequence (u32 LE): the newest valid record wins
//! 12      4     body length N (u32 LE)
//! 16      N     body: 32-byte P-256 secret, then the certificate PEM
//! 16+N    4     CRC-32 (IEEE) of bytes 0..16+N (u32 LE)
//! ```
//!
//! A save erases and writes the slot that does not hold the newest record,
//! with the next sequence number; only when its CRC checks does it count.
//! A torn write (power lost while erasing or writing) leaves a record with
//! a bad magic, length or CRC, which is ignored: the previous identity
//! stays in use. This module owns the format and the slot choice; the
//! platform gives raw flash access ([`Flash`]) and never interprets bytes.

use alloc::vec;
use alloc::vec::Vec;

/// Size of one slot: one erase sector.
pub const SLOT_SIZE: u32 = 4096;
/// Size of the partition: two slots.
pub const PARTITION_SIZE: u32 = 2 * SLOT_SIZE;
/// Record magic.
const MAGIC: &[u8; 4] = b"FMQI";
/// Format version.
const VERSION: u8 = 1;
/// Header bytes before the body.
const HEADER: usize = 16;
/// The secret scalar at the start of the body.
const SECRET: usize = 32;
/// Largest body a slot holds (header and CRC around it).
pub const MAX_BODY: usize = SLOT_SIZE as usize - HEADER - 4;

/// Raw access to the partition, offsets relative to its start. Writes are
/// NOR writes (bits only go from 1 to 0) of lengths that are multiples of
/// four at offsets that are multiples of four; erases are whole slots.
pub trait Flash {
    /// What the platform's flash driver reports.
    type Error: core::fmt::Debug;
    /// Reads `buf.len()` bytes (a multiple of four) at `offset`.
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error>;
    /// Sets the `SLOT_SIZE` bytes at `offset` to 0xFF.
    fn erase_slot(&mut self, offset: u32) -> Result<(), Self::Error>;
    /// Writes `bytes` (a multiple of four long) at `offset`.
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error>;
}

/// What the partition keeps: the device's key and its certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredIdentity {
    /// The P-256 secret scalar, big-endian.
    pub secret: [u8; 32],
    /// The device's certificate, PEM.
    pub cert_pem: Vec<u8>,
}

impl core::fmt::Debug for StoredIdentity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StoredIdentity { secret: <hidden>, cert_pem }")
    }
}

/// Why a save did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum StoreError<E> {
    /// The certificate does not fit a slot.
    TooLarge,
    /// The flash driver failed.
    Flash(E),
    /// Read back after writing, the record does not check (bad flash).
    Verify,
}

/// The newest valid record, with its sequence and slot, if any.
pub fn load<F: Flash>(flash: &mut F) -> Result<Option<(StoredIdentity, u32)>, F::Error> {
    Ok(newest(flash)?.map(|(identity, sequence, _)| (identity, sequence)))
}

/// Keeps `identity` as the newest record, in the slot the current newest
/// is not in. Returns the sequence written.
pub fn save<F: Flash>(
    flash: &mut F,
    identity: &StoredIdentity,
) -> Result<u32, StoreError<F::Error>> {
    let record = encode(identity, 0).ok_or(StoreError::TooLarge)?;
    let (sequence, slot) = match newest(flash).map_err(StoreError::Flash)? {
        Some((_, sequence, slot)) => (sequence.wrapping_add(1), 1 - slot),
        None => (1, 0),
    };
    let record = encode(identity, sequence).unwrap_or(record);
    let offset = slot * SLOT_SIZE;
    flash.erase_slot(offset).map_err(StoreError::Flash)?;
    flash.write(offset, &record).map_err(StoreError::Flash)?;
    match read_slot(flash, slot).map_err(StoreError::Flash)? {
        Some((written, seq)) if seq == sequence && written == *identity => Ok(sequence),
        _ => Err(StoreError::Verify),
    }
}

/// The valid record with the highest sequence: (identity, sequence, slot).
fn newest<F: Flash>(flash: &mut F) -> Result<Option<(StoredIdentity, u32, u32)>, F::Error> {
    let mut best: Option<(StoredIdentity, u32, u32)> = None;
    for slot in 0..2 {
        if let Some((identity, sequence)) = read_slot(flash, slot)? {
            if best.as_ref().is_none_or(|(_, seq, _)| sequence > *seq) {
                best = Some((identity, sequence, slot));
            }
        }
    }
    Ok(best)
}

/// The record in `slot`, if its magic, version, length and CRC check.
fn read_slot<F: Flash>(
    flash: &mut F,
    slot: u32,
) -> Result<Option<(StoredIdentity, u32)>, F::Error> {
    let offset = slot * SLOT_SIZE;
    let mut header = [0u8; HEADER];
    flash.read(offset, &mut header)?;
    if &header[..4] != MAGIC || header[4] != VERSION {
        return Ok(None);
    }
    let sequence = u32_at(&header, 8);
    let body_len = u32_at(&header, 12) as usize;
    if !(SECRET..=MAX_BODY).contains(&body_len) {
        return Ok(None);
    }
    let mut record = vec![0u8; padded(HEADER + body_len + 4)];
    flash.read(offset, &mut record)?;
    Ok(decode(&record).map(|identity| (identity, sequence)))
}

/// The record bytes for `identity`, padded with 0xFF to a multiple of four;
/// `None` if it does not fit a slot.
fn encode(identity: &StoredIdentity, sequence: u32) -> Option<Vec<u8>> {
    let body_len = SECRET + identity.cert_pem.len();
    if body_len > MAX_BODY {
        return None;
    }
    let mut out = Vec::with_capacity(padded(HEADER + body_len + 4));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[VERSION, 0, 0, 0]);
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&identity.secret);
    out.extend_from_slice(&identity.cert_pem);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.resize(padded(out.len()), 0xFF);
    Some(out)
}

/// The identity in `record` (header, body, CRC, padding), if it checks.
fn decode(record: &[u8]) -> Option<StoredIdentity> {
    let body_len = u32_at(record.get(..HEADER)?, 12) as usize;
    let end = HEADER.checked_add(body_len)?;
    let covered = record.get(..end)?;
    let stored_crc = u32_at(record.get(end..end + 4)?, 0);
    if crc32(covered) != stored_crc {
        return None;
    }
    let body = covered.get(HEADER..)?;
    let (secret, cert_pem) = body.split_at_checked(SECRET)?;
    Some(StoredIdentity {
        secret: secret.try_into().ok()?,
        cert_pem: cert_pem.to_vec(),
    })
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(part) = bytes.get(at..at + 4) {
        word.copy_from_slice(part);
    }
    u32::from_le_bytes(word)
}

fn padded(len: usize) -> usize {
    len.div_ceil(4) * 4
}

/// CRC-32 (IEEE 802.3, reflected, as zlib): bitwise, no table, since it
/// runs over a few KiB once per boot.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
