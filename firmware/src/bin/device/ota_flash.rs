//! The ESP32's OTA flash (docs/ota.md, decision 0174): the library's
//! [`OtaFlash`] over esp-storage, limited to the partitions the partition
//! table names (`otadata`, `ota_0`, `ota_1`, `otaprogress`; read at boot
//! with esp-bootloader-esp-idf), and the slot the chip runs, from the MMU.
//!
//! esp-storage's NOR calls take 4-byte aligned offsets and lengths; chunks
//! and records are not always so, so a write is widened to whole words
//! with 0xFF bytes (programming 0xFF leaves a NOR cell as it is) and a
//! read is done on the aligned words around it.
//!
//! This module only maps flash; the slot logic, the otadata records and
//! the protocol are the library's (`ota::slots`, `ota::agent`).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use core::cell::RefCell;

use esp_bootloader_esp_idf::partitions::{
    self, AppPartitionSubType, DataPartitionSubType, PartitionType, PARTITION_TABLE_MAX_LEN,
};
use esp_storage::FlashStorage;
use fleetmq_firmware::ota::flash::{FlashError, Layout, OtaFlash};

/// The label of the progress partition in firmware/partitions.csv.
const PROGRESS_LABEL: &str = "otaprogress";

/// The flash, shared with the identity partition's store.
pub type SharedFlash = &'static RefCell<FlashStorage<'static>>;

/// The OTA partitions of the chip's flash.
pub struct EspOtaFlash {
    flash: SharedFlash,
    /// `(start, length)` of every partition this may touch.
    regions: [(u32, u32); 4],
}

/// What the partition table says, and which slot runs.
pub struct Found {
    /// The flash, limited to the OTA partitions.
    pub flash: EspOtaFlash,
    /// Where they are.
    pub layout: Layout,
    /// The slot the chip runs (0 or 1).
    pub running_slot: usize,
}

/// Reads the partition table: the OTA layout and the running slot.
pub fn open(flash: SharedFlash) -> Result<Found, String> {
    let mut buffer = [0u8; PARTITION_TABLE_MAX_LEN];
    let mut storage = flash.borrow_mut();
    let table = partitions::read_partition_table(&mut storage, &mut buffer)
        .map_err(|e| format!("cannot read the partition table: {e:?}"))?;
    let find = |kind: PartitionType| {
        table.find_partition(kind).ok().flatten().ok_or_else(|| {
            format!("no {kind:?} partition: flash with firmware/partitions.csv (docs/ota.md)")
        })
    };
    let otadata = find(PartitionType::Data(DataPartitionSubType::Ota))?;
    let ota_0 = find(PartitionType::App(AppPartitionSubType::Ota0))?;
    let ota_1 = find(PartitionType::App(AppPartitionSubType::Ota1))?;
    let progress = table
        .iter()
        .find(|entry| entry.label_as_str() == PROGRESS_LABEL);
    if otadata.len() != 0x2000 {
        return Err(String::from("the otadata partition must be 0x2000 bytes"));
    }
    if [otadata, ota_0, ota_1].iter().any(|p| p.is_encrypted())
        || progress.is_some_and(|p| p.is_encrypted())
    {
        return Err(String::from(
            "encrypted OTA partitions are not supported by this firmware yet",
        ));
    }
    let booted = table
        .booted_partition()
        .ok()
        .flatten()
        .map(|entry| entry.offset());
    let running_slot = match booted {
        Some(at) if at == ota_1.offset() => 1,
        Some(at) if at == ota_0.offset() => 0,
        _ => {
            return Err(String::from(
                "the running image is in neither ota_0 nor ota_1",
            ))
        }
    };
    let layout = Layout {
        otadata: otadata.offset(),
        slots: [ota_0.offset(), ota_1.offset()],
        slot_size: ota_0.len().min(ota_1.len()),
        progress: progress
            .filter(|p| p.len() >= 0x1000 && p.offset() % 0x1000 == 0)
            .map(|p| p.offset()),
    };
    let regions = [
        (otadata.offset(), otadata.len()),
        (ota_0.offset(), ota_0.len()),
        (ota_1.offset(), ota_1.len()),
        progress.map_or((0, 0), |p| (p.offset(), p.len())),
    ];
    drop(storage);
    Ok(Found {
        flash: EspOtaFlash { flash, regions },
        layout,
        running_slot,
    })
}

const WORD: u32 = 4;

impl EspOtaFlash {
    /// Refuses anything outside the OTA partitions.
    fn check(&self, offset: u32, len: usize) -> Result<(), FlashError> {
        let end = offset as u64 + len as u64;
        let inside = self.regions.iter().any(|(start, size)| {
            *size > 0 && offset >= *start && end <= u64::from(*start) + u64::from(*size)
        });
        if inside {
            Ok(())
        } else {
            Err(FlashError(format!(
                "{len} bytes at {offset:#x} are outside the OTA partitions"
            )))
        }
    }
}

fn flash_error(e: esp_storage::FlashStorageError) -> FlashError {
    FlashError(format!("flash: {e:?}"))
}

impl OtaFlash for EspOtaFlash {
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        self.check(offset, buf.len())?;
        let start = offset - offset % WORD;
        let lead = (offset - start) as usize;
        let len = (lead + buf.len()).div_ceil(WORD as usize) * WORD as usize;
        let mut words = vec![0u8; len];
        self.flash
            .borrow_mut()
            .read_nor(start, &mut words)
            .map_err(flash_error)?;
        buf.copy_from_slice(&words[lead..lead + buf.len()]);
        Ok(())
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        self.check(offset, data.len())?;
        let start = offset - offset % WORD;
        let lead = (offset - start) as usize;
        let len = (lead + data.len()).div_ceil(WORD as usize) * WORD as usize;
        let mut words = vec![0xFFu8; len];
        words[lead..lead + data.len()].copy_from_slice(data);
        self.flash
            .borrow_mut()
            .write_nor(start, &words)
            .map_err(flash_error)
    }

    fn erase(&mut self, offset: u32, len: u32) -> Result<(), FlashError> {
        self.check(offset, len as usize)?;
        self.flash
            .borrow_mut()
            .erase(offset, offset + len)
            .map_err(flash_error)
    }
}
