//! Where the ESP32 keeps its own key and certificate: the `fleetmq` data
//! partition of firmware/partitions.csv (8 KiB, two 4 KiB slots), read and
//! written with esp-storage in the record format of
//! `fleetmq_firmware::provision::store` (magic, length, CRC-32; a torn
//! write leaves the previous identity in use). The key comes from the
//! chip's TRNG (the RNG peripheral fed by the SAR ADC and the radio).
//!
//! This module only maps the partition and the TRNG onto the library's
//! traits; the flow is `runner::identity`, the format `provision::store`.

use alloc::format;
use alloc::string::String;

use esp_bootloader_esp_idf::partitions::{self, PARTITION_TABLE_MAX_LEN};
use esp_hal::rng::Trng;
use esp_storage::FlashStorageError;
use fleetmq_firmware::config::ClientIdentity;
use fleetmq_firmware::provision::key::DeviceKey;
use fleetmq_firmware::provision::store::{self, Flash, StoredIdentity, PARTITION_SIZE, SLOT_SIZE};
use fleetmq_firmware::runner::identity::{IdentityStore, TrueRandom};

use crate::ota_flash::SharedFlash;

/// The label of the partition in firmware/partitions.csv.
const PARTITION_LABEL: &str = "fleetmq";

/// The partition as the store's raw flash: offsets relative to its start,
/// nothing outside it reachable.
pub struct PartitionFlash {
    /// The chip's flash, shared with the OTA slots.
    flash: SharedFlash,
    /// Where the partition starts in flash.
    base: u32,
}

impl PartitionFlash {
    /// Finds the `fleetmq` partition in the partition table.
    pub fn open(flash: SharedFlash) -> Result<PartitionFlash, String> {
        let mut table = [0u8; PARTITION_TABLE_MAX_LEN];
        let entry = {
            let mut storage = flash.borrow_mut();
            let table = partitions::read_partition_table(&mut storage, &mut table)
                .map_err(|e| format!("cannot read the partition table: {e:?}"))?;
            let found = table
                .iter()
                .find(|entry| entry.label_as_str() == PARTITION_LABEL);
            found.ok_or_else(|| {
                format!("no `{PARTITION_LABEL}` partition: flash with firmware/partitions.csv")
            })?
        };
        if entry.len() < PARTITION_SIZE || entry.offset() % SLOT_SIZE != 0 {
            return Err(format!(
                "the `{PARTITION_LABEL}` partition must be at least {PARTITION_SIZE} bytes at a 4 KiB boundary"
            ));
        }
        if entry.is_encrypted() {
            return Err(format!(
                "the `{PARTITION_LABEL}` partition is marked encrypted, which this firmware does not support yet"
            ));
        }
        Ok(PartitionFlash {
            flash,
            base: entry.offset(),
        })
    }

    fn at(&self, offset: u32, len: usize) -> Result<u32, FlashStorageError> {
        let end = (offset as usize).checked_add(len);
        match end {
            Some(end) if end <= PARTITION_SIZE as usize => Ok(self.base + offset),
            _ => Err(FlashStorageError::OutOfBounds),
        }
    }
}

impl Flash for PartitionFlash {
    type Error = FlashStorageError;

    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashStorageError> {
        let at = self.at(offset, buf.len())?;
        self.flash.borrow_mut().read_nor(at, buf)
    }

    fn erase_slot(&mut self, offset: u32) -> Result<(), FlashStorageError> {
        let at = self.at(offset, SLOT_SIZE as usize)?;
        self.flash.borrow_mut().erase(at, at + SLOT_SIZE)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashStorageError> {
        let at = self.at(offset, bytes.len())?;
        self.flash.borrow_mut().write_nor(at, bytes)
    }
}

/// The device's identity in the partition.
pub struct FlashIdentity(pub PartitionFlash);

impl IdentityStore for FlashIdentity {
    fn load(&mut self) -> Result<Option<ClientIdentity>, String> {
        let Some((stored, _sequence)) =
            store::load(&mut self.0).map_err(|e| format!("flash read failed: {e:?}"))?
        else {
            return Ok(None);
        };
        let key =
            DeviceKey::from_secret(&stored.secret).ok_or("the stored key is not a P-256 key")?;
        Ok(Some(ClientIdentity {
            cert_pem: stored.cert_pem,
            key_pem: key.sec1_pem().into_bytes(),
        }))
    }

    fn save(&mut self, key: &DeviceKey, cert_pem: &[u8]) -> Result<(), String> {
        let record = StoredIdentity {
            secret: key.secret(),
            cert_pem: cert_pem.to_vec(),
        };
        store::save(&mut self.0, &record)
            .map(|_sequence| ())
            .map_err(|e| format!("flash write failed: {e:?}"))
    }

    fn describe(&self) -> String {
        format!("flash partition `{PARTITION_LABEL}` at {:#x}", self.0.base)
    }
}

/// The TRNG (valid while the `TrngSource` lives, which is forever here).
pub struct TrngRandom(pub Trng);

impl TrueRandom for TrngRandom {
    fn fill(&mut self, out: &mut [u8; 32]) {
        self.0.read(out);
    }
}
