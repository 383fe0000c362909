//! The otadata selector, as ESP-IDF's bootloader reads it: two flash
//! sectors each holding one 32-byte record `{ota_seq, seq_label[20],
//! ota_state, crc}`; the valid record with the highest sequence number
//! picks slot `(seq - 1) % 2`, and its state drives rollback (`NEW` ->
//! `PENDING_VERIFY` at boot -> `VALID` once the app confirms; a boot that
//! finds `PENDING_VERIFY` marks it `ABORTED` and falls back).
//!
//! Owns: the record's byte layout, its CRC and the states. Must not touch
//! flash (see [`super::slots`]).

/// Bytes of one record.
pub const RECORD_LEN: usize = 32;

/// `esp_ota_img_states_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageState {
    /// Written and verified, never booted.
    New,
    /// Booted once, not yet confirmed by the app.
    PendingVerify,
    /// Confirmed.
    Valid,
    /// Refused by the app (it asked to roll back).
    Invalid,
    /// Booted but not confirmed before the next boot.
    Aborted,
    /// No state written (ESP-IDF without rollback).
    Undefined,
}

impl ImageState {
    fn code(self) -> u32 {
        match self {
            ImageState::New => 0,
            ImageState::PendingVerify => 1,
            ImageState::Valid => 2,
            ImageState::Invalid => 3,
            ImageState::Aborted => 4,
            ImageState::Undefined => u32::MAX,
        }
    }

    fn from_code(code: u32) -> ImageState {
        match code {
            0 => ImageState::New,
            1 => ImageState::PendingVerify,
            2 => ImageState::Valid,
            3 => ImageState::Invalid,
            4 => ImageState::Aborted,
            _ => ImageState::Undefined,
        }
    }

    /// Whether the bootloader may select a record in this state.
    pub fn bootable(self) -> bool {
        !matches!(self, ImageState::Invalid | ImageState::Aborted)
    }
}

/// What fleetmq writes into `seq_label` when the application itself moved
/// a record from `New` to `PendingVerify` (a bootloader built without
/// `CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`, as espflash's, never does):
/// finding it again at the next start means that boot never confirmed.
/// The bootloader ignores the label (its CRC covers `ota_seq` only).
pub const APP_PENDING_LABEL: &[u8; 20] = b"fleetmq-app-pending\0";

/// One otadata record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Sequence number; the slot is `(seq - 1) % 2`.
    pub seq: u32,
    /// Rollback state.
    pub state: ImageState,
    /// `seq_label` holds [`APP_PENDING_LABEL`]: the application, not the
    /// bootloader, marked it `PendingVerify`.
    pub app_pending: bool,
}

impl Record {
    /// The slot this record selects.
    pub fn slot(&self) -> usize {
        (self.seq.wrapping_sub(1) % 2) as usize
    }

    /// The record's bytes (label zeroed, CRC over the sequence number).
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[0..4].copy_from_slice(&self.seq.to_le_bytes());
        if self.app_pending {
            out[4..24].copy_from_slice(APP_PENDING_LABEL);
        }
        out[24..28].copy_from_slice(&self.state.code().to_le_bytes());
        out[28..32].copy_from_slice(&crc32_le(&self.seq.to_le_bytes()).to_le_bytes());
        out
    }

    /// A record read from flash; `None` when erased or its CRC is wrong
    /// (a write torn by a power loss).
    pub fn decode(bytes: &[u8; RECORD_LEN]) -> Option<Record> {
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let seq = word(0);
        if seq == u32::MAX || seq == 0 || word(28) != crc32_le(&bytes[0..4]) {
            return None;
        }
        Some(Record {
            seq,
            state: ImageState::from_code(word(24)),
            app_pending: bytes[4..24] == APP_PENDING_LABEL[..],
        })
    }
}

/// `esp_rom_crc32_le(UINT32_MAX, data)`, as the bootloader checks it.
pub fn crc32_le(data: &[u8]) -> u32 {
    let mut crc: u32 = 0;
    for byte in data {
        crc ^= u32::from(*byte);
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
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_ones_are_ignored() {
        let record = Record {
            seq: 3,
            state: ImageState::PendingVerify,
            app_pending: false,
        };
        let marked = Record {
            app_pending: true,
            ..record
        };
        assert_eq!(Record::decode(&marked.encode()), Some(marked));
        let mut bytes = record.encode();
        assert_eq!(Record::decode(&bytes), Some(record));
        assert_eq!(record.slot(), 0);
        bytes[0] ^= 1;
        assert_eq!(Record::decode(&bytes), None);
        assert_eq!(Record::decode(&[0xFF; RECORD_LEN]), None);
    }
}
