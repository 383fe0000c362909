//! The flash the OTA slots live in, as a trait: the ESP32 backend writes
//! the chip's SPI flash, the host simulation a file (the same slot logic
//! runs over both), and [`MemFlash`] serves the unit tests.
//!
//! Owns: the trait, the partition [`Layout`] and the sector size. Must not
//! know what an image or an otadata record is ([`super::slots`] does).

use alloc::vec;
use alloc::vec::Vec;

/// Erase granularity of the ESP32's SPI flash (and of ESP-IDF's otadata).
pub const SECTOR: u32 = 4096;

/// Why a flash operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashError(pub alloc::string::String);

/// Byte-addressed flash: `erase` sets whole sectors to 0xFF, `write` only
/// programs erased bytes (as NOR flash; the file-backed flash enforces
/// nothing more than the offsets).
pub trait OtaFlash {
    /// Reads `buf.len()` bytes at `offset`.
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError>;
    /// Programs `data` at `offset` (erased before).
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError>;
    /// Erases `len` bytes from `offset`, both multiples of [`SECTOR`].
    fn erase(&mut self, offset: u32, len: u32) -> Result<(), FlashError>;
}

/// Where the otadata selector and the two OTA slots are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the two otadata sectors (ESP-IDF's `otadata`, 0x2000).
    pub otadata: u32,
    /// Offsets of `ota_0` and `ota_1`.
    pub slots: [u32; 2],
    /// Size of each slot.
    pub slot_size: u32,
    /// One sector for a download's progress across a reset
    /// ([`super::progress`]); `None`: progress is kept in RAM only.
    pub progress: Option<u32>,
}

impl Layout {
    /// The 4 MB partition table of docs/ota.md (ESP32-C3 and C6):
    /// otadata at 0xd000, ota_0 at 0x10000 and ota_1 at 0x1f0000, 1.875 MiB
    /// each, `otaprogress` at 0x3d0000 (firmware/partitions.csv).
    pub const ESP32_4MB: Layout = Layout {
        otadata: 0xd000,
        slots: [0x10000, 0x1f0000],
        slot_size: 0x1e0000,
        progress: Some(0x3d0000),
    };

    /// The host simulation's flash file: otadata, two 256 KiB slots, then
    /// the progress sector.
    pub const SIM: Layout = Layout {
        otadata: 0,
        slots: [0x2000, 0x2000 + 0x40000],
        slot_size: 0x40000,
        progress: Some(0x2000 + 0x80000),
    };

    /// Bytes a flash needs to hold this layout from offset 0.
    pub fn end(&self) -> u32 {
        let slots = self.slots[1].saturating_add(self.slot_size);
        let progress = self.progress.map_or(0, |at| at.saturating_add(SECTOR));
        slots.max(progress)
    }
}

/// Flash in memory, for tests.
#[derive(Debug, Clone)]
pub struct MemFlash(pub Vec<u8>);

impl MemFlash {
    /// Erased flash of `len` bytes.
    pub fn new(len: u32) -> MemFlash {
        MemFlash(vec![0xFF; len as usize])
    }

    fn range(&self, offset: u32, len: usize) -> Result<core::ops::Range<usize>, FlashError> {
        let start = offset as usize;
        let end = start.saturating_add(len);
        if end > self.0.len() {
            return Err(FlashError(alloc::format!(
                "{len} bytes at {offset:#x} are beyond the flash"
            )));
        }
        Ok(start..end)
    }
}

impl OtaFlash for MemFlash {
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        let range = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.0[range]);
        Ok(())
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        let range = self.range(offset, data.len())?;
        // NOR flash only clears bits.
        for (cell, byte) in self.0[range].iter_mut().zip(data) {
            *cell &= *byte;
        }
        Ok(())
    }

    fn erase(&mut self, offset: u32, len: u32) -> Result<(), FlashError> {
        let range = self.range(offset, len as usize)?;
        self.0[range].fill(0xFF);
        Ok(())
    }
}
