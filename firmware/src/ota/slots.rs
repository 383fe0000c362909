//! Two OTA slots and the otadata selector over an [`OtaFlash`]: what the
//! bootloader does at reset ([`Slots::boot`]), what the application does
//! to install an image ([`Slots::begin`], [`Slots::write_chunk`],
//! [`Slots::verify`], [`Slots::activate`]) and to keep or refuse the one
//! it runs ([`Slots::confirm`]). The same code runs on the device and in
//! the host simulation's file-backed flash.
//!
//! Owns: which slot runs, which one receives, rollback. Must not talk to
//! the network or check signatures (the [`super::agent`] does).

use alloc::format;
use alloc::string::String;
use sha2::{Digest, Sha256};

use super::flash::{FlashError, Layout, OtaFlash, SECTOR};
use super::image;
use super::otadata::{ImageState, Record, RECORD_LEN};

/// What [`Slots::app_start`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppStart {
    /// Run the image; `PendingVerify` until it is online again.
    Run(Booted),
    /// This image was booted before and never confirmed: reset now, the
    /// bootloader starts the previous one.
    RollBack,
}

/// The two slots on one flash.
#[derive(Debug)]
pub struct Slots<F> {
    flash: F,
    layout: Layout,
}

/// What the bootloader chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booted {
    /// The slot running.
    pub slot: usize,
    /// Its otadata state after the boot (`PendingVerify` for a new image
    /// the application must still confirm); `None`: the factory image in
    /// slot 0, no record.
    pub state: Option<ImageState>,
}

impl<F: OtaFlash> Slots<F> {
    /// The slots of `layout` on `flash`.
    pub fn new(flash: F, layout: Layout) -> Slots<F> {
        Slots { flash, layout }
    }

    /// The flash, for the platform.
    pub fn flash(&mut self) -> &mut F {
        &mut self.flash
    }

    /// The flash back (a reset: the next boot reads it again).
    pub fn into_flash(self) -> F {
        self.flash
    }

    /// Where the slots are.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Erases `slot` from `offset` (a multiple of [`SECTOR`]) to the end of
    /// an image of `size` bytes: a download resumed after a reset rewrites
    /// from there (the chunk being written when the power went may be torn).
    pub fn erase_from(&mut self, slot: usize, offset: u32, size: u32) -> Result<(), FlashError> {
        if offset % SECTOR != 0 || size > self.layout.slot_size {
            return Err(FlashError(format!(
                "cannot erase slot {slot} from {offset:#x}"
            )));
        }
        let end = size.div_ceil(SECTOR) * SECTOR;
        if offset >= end {
            return Ok(());
        }
        let at = self.slot_offset(slot)? + offset;
        self.flash.erase(at, end - offset)
    }

    /// Both otadata records (`None`: erased or torn).
    fn records(&mut self) -> Result<[Option<Record>; 2], FlashError> {
        let mut out = [None, None];
        for (sector, record) in out.iter_mut().enumerate() {
            let mut bytes = [0u8; RECORD_LEN];
            self.flash
                .read(self.layout.otadata + sector as u32 * SECTOR, &mut bytes)?;
            *record = Record::decode(&bytes);
        }
        Ok(out)
    }

    fn write_record(&mut self, sector: usize, record: Record) -> Result<(), FlashError> {
        let at = self.layout.otadata + sector as u32 * SECTOR;
        self.flash.erase(at, SECTOR)?;
        self.flash.write(at, &record.encode())
    }

    /// The sector holding the bootable record of the highest sequence.
    fn selected(&mut self) -> Result<Option<(usize, Record)>, FlashError> {
        let records = self.records()?;
        Ok(records
            .iter()
            .enumerate()
            .filter_map(|(sector, record)| record.map(|r| (sector, r)))
            .filter(|(_, record)| record.state.bootable())
            .max_by_key(|(_, record)| record.seq))
    }

    /// The bootloader's step at reset: a record still `PendingVerify` was
    /// booted and never confirmed, so it becomes `Aborted` and the other
    /// slot runs; a `New` one becomes `PendingVerify` and runs.
    pub fn boot(&mut self) -> Result<Booted, FlashError> {
        loop {
            let Some((sector, mut record)) = self.selected()? else {
                return Ok(Booted {
                    slot: 0,
                    state: None,
                });
            };
            match record.state {
                ImageState::PendingVerify => {
                    record.state = ImageState::Aborted;
                    self.write_record(sector, record)?;
                }
                ImageState::New => {
                    record.state = ImageState::PendingVerify;
                    self.write_record(sector, record)?;
                    return Ok(Booted {
                        slot: record.slot(),
                        state: Some(record.state),
                    });
                }
                state => {
                    return Ok(Booted {
                        slot: record.slot(),
                        state: Some(state),
                    })
                }
            }
        }
    }

    /// The application's step at start on the device, right for both kinds
    /// of bootloader: one built with `CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`
    /// (it turned `New` into `PendingVerify` and aborts an unconfirmed
    /// image at the next reset itself) and one without, as espflash ships
    /// (it boots the highest valid record and never writes otadata).
    /// `running_slot` is the slot the chip runs (from the MMU).
    ///
    /// - A `New` record here was left by a bootloader without rollback:
    ///   the application marks it `PendingVerify` with
    ///   [`super::otadata::APP_PENDING_LABEL`], as such a bootloader would.
    /// - Finding that marked `PendingVerify` again means the last boot of
    ///   this image never confirmed it: it becomes `Aborted` (which every
    ///   ESP-IDF bootloader skips), the previous slot is selected, and the
    ///   caller resets ([`AppStart::RollBack`]).
    /// - A record the bootloader did not start (its image did not load)
    ///   while still `New` or `PendingVerify` is marked `Aborted`.
    pub fn app_start(&mut self, running_slot: usize) -> Result<AppStart, FlashError> {
        let Some((sector, mut record)) = self.selected()? else {
            return Ok(AppStart::Run(Booted {
                slot: running_slot,
                state: None,
            }));
        };
        let unconfirmed = matches!(record.state, ImageState::New | ImageState::PendingVerify);
        if record.slot() != running_slot {
            if unconfirmed {
                record.state = ImageState::Aborted;
                self.write_record(sector, record)?;
                self.keep_previous(sector, record.seq)?;
            }
            let state = self.selected()?.map(|(_, r)| r.state);
            return Ok(AppStart::Run(Booted {
                slot: running_slot,
                state,
            }));
        }
        match record.state {
            ImageState::New => {
                record.state = ImageState::PendingVerify;
                record.app_pending = true;
                self.write_record(sector, record)?;
                Ok(AppStart::Run(Booted {
                    slot: running_slot,
                    state: Some(ImageState::PendingVerify),
                }))
            }
            ImageState::PendingVerify if record.app_pending => {
                record.state = ImageState::Aborted;
                self.write_record(sector, record)?;
                self.keep_previous(sector, record.seq)?;
                Ok(AppStart::RollBack)
            }
            state => Ok(AppStart::Run(Booted {
                slot: running_slot,
                state: Some(state),
            })),
        }
    }

    /// After the record of sequence `refused` in `sector` was aborted:
    /// when the other sector holds no bootable record (a device that ran
    /// its first image without one), write one that selects the other
    /// slot, `Valid`, with a lower sequence, so that the bootloader starts
    /// the previous image and [`Slots::rolled_back`] still reports the
    /// refused one as newer.
    fn keep_previous(&mut self, sector: usize, refused: u32) -> Result<(), FlashError> {
        let other = 1 - sector;
        let records = self.records()?;
        let has_bootable = records[other].is_some_and(|r| r.state.bootable());
        if has_bootable || refused < 2 {
            return Ok(());
        }
        self.write_record(
            other,
            Record {
                seq: refused - 1,
                state: ImageState::Valid,
                app_pending: false,
            },
        )
    }

    /// The slot running now (what the last boot chose).
    pub fn running(&mut self) -> Result<Booted, FlashError> {
        Ok(match self.selected()? {
            Some((_, record)) => Booted {
                slot: record.slot(),
                state: Some(record.state),
            },
            None => Booted {
                slot: 0,
                state: None,
            },
        })
    }

    /// The application keeps the image it runs: `PendingVerify` becomes
    /// `Valid`. True when something was confirmed.
    pub fn confirm(&mut self) -> Result<bool, FlashError> {
        match self.selected()? {
            Some((sector, mut record)) if record.state == ImageState::PendingVerify => {
                record.state = ImageState::Valid;
                record.app_pending = false;
                self.write_record(sector, record)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The newest record when it was refused (`Aborted` or `Invalid`) and
    /// is newer than the running one: the update that was rolled back,
    /// with its slot.
    pub fn rolled_back(&mut self) -> Result<Option<(usize, ImageState)>, FlashError> {
        let running = self.selected()?.map_or(0, |(_, record)| record.seq);
        let records = self.records()?;
        Ok(records
            .iter()
            .flatten()
            .filter(|record| !record.state.bootable() && record.seq > running)
            .max_by_key(|record| record.seq)
            .map(|record| (record.slot(), record.state)))
    }

    /// The version in the application descriptor of `slot`'s image.
    pub fn version(&mut self, slot: usize) -> Result<Option<String>, FlashError> {
        Ok(self.descriptor(slot)?.map(|(_, version)| version))
    }

    /// The chip id and version `slot`'s image declares.
    pub fn descriptor(&mut self, slot: usize) -> Result<Option<(u16, String)>, FlashError> {
        let mut header = [0u8; image::HEADER_LEN];
        self.flash.read(self.slot_offset(slot)?, &mut header)?;
        Ok(image::describe(&header)
            .ok()
            .map(|(chip, version)| (chip, String::from(version))))
    }

    fn slot_offset(&self, slot: usize) -> Result<u32, FlashError> {
        self.layout
            .slots
            .get(slot)
            .copied()
            .ok_or_else(|| FlashError(format!("no slot {slot}")))
    }

    /// Prepares the slot that does not run for an image of `size` bytes
    /// (erased); returns it.
    pub fn begin(&mut self, size: u32) -> Result<usize, FlashError> {
        if size > self.layout.slot_size {
            return Err(FlashError(format!(
                "image of {size} bytes does not fit a slot of {}",
                self.layout.slot_size
            )));
        }
        let target = 1 - self.running()?.slot;
        let erase = size.div_ceil(SECTOR).max(1) * SECTOR;
        self.flash.erase(self.slot_offset(target)?, erase)?;
        Ok(target)
    }

    /// Writes `data` at `offset` of `slot` and reads it back; false when
    /// the flash does not hold what was written.
    pub fn write_chunk(
        &mut self,
        slot: usize,
        offset: u32,
        data: &[u8],
    ) -> Result<bool, FlashError> {
        if offset.saturating_add(data.len() as u32) > self.layout.slot_size {
            return Err(FlashError(String::from("chunk beyond the slot")));
        }
        let at = self.slot_offset(slot)? + offset;
        self.flash.write(at, data)?;
        let mut back = alloc::vec![0u8; data.len()];
        self.flash.read(at, &mut back)?;
        Ok(back == data)
    }

    /// SHA-256 of the first `size` bytes of `slot`, read from flash.
    pub fn verify(&mut self, slot: usize, size: u32) -> Result<[u8; 32], FlashError> {
        let start = self.slot_offset(slot)?;
        let mut hasher = Sha256::new();
        let mut block = [0u8; 1024];
        let mut done = 0u32;
        while done < size {
            let take = (size - done).min(block.len() as u32) as usize;
            self.flash.read(start + done, &mut block[..take])?;
            hasher.update(&block[..take]);
            done += take as u32;
        }
        Ok(hasher.finalize().into())
    }

    /// Marks `slot` (verified) to boot next as `New`, in the otadata
    /// sector that does not hold the running record, so a power loss
    /// during the write leaves the running choice intact.
    pub fn activate(&mut self, slot: usize) -> Result<(), FlashError> {
        let records = self.records()?;
        let newest = records.iter().flatten().map(|r| r.seq).max().unwrap_or(0);
        let mut seq = newest + 1;
        if (seq.wrapping_sub(1) % 2) as usize != slot {
            seq += 1;
        }
        let keep = self.selected()?.map(|(sector, _)| sector);
        let sector = match keep {
            Some(0) => 1,
            _ => 0,
        };
        self.write_record(
            sector,
            Record {
                seq,
                state: ImageState::New,
                app_pending: false,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::flash::MemFlash;
    use super::*;

    fn install(slots: &mut Slots<MemFlash>, version: &str) -> usize {
        let image = image::build(5, version, b"app");
        let slot = slots.begin(image.len() as u32).unwrap();
        assert!(slots.write_chunk(slot, 0, &image).unwrap());
        let hash: [u8; 32] = Sha256::digest(&image).into();
        assert_eq!(slots.verify(slot, image.len() as u32).unwrap(), hash);
        slots.activate(slot).unwrap();
        slot
    }

    fn fresh() -> Slots<MemFlash> {
        let mut slots = Slots::new(MemFlash::new(Layout::SIM.end()), Layout::SIM);
        let factory = image::build(5, "1.0.0", b"factory");
        slots.flash().write(Layout::SIM.slots[0], &factory).unwrap();
        slots
    }

    #[test]
    fn a_confirmed_update_stays_across_resets() {
        let mut slots = fresh();
        assert_eq!(slots.boot().unwrap().slot, 0);
        assert_eq!(install(&mut slots, "1.1.0"), 1);
        let booted = slots.boot().unwrap();
        assert_eq!(
            booted,
            Booted {
                slot: 1,
                state: Some(ImageState::PendingVerify)
            }
        );
        assert!(slots.confirm().unwrap());
        assert_eq!(slots.boot().unwrap().slot, 1);
        assert_eq!(slots.version(1).unwrap().as_deref(), Some("1.1.0"));
        // The next update goes to the other slot.
        assert_eq!(install(&mut slots, "1.2.0"), 0);
        assert_eq!(slots.boot().unwrap().slot, 0);
        assert!(slots.confirm().unwrap());
        assert_eq!(slots.rolled_back().unwrap(), None);
    }

    #[test]
    fn an_unconfirmed_update_is_rolled_back_at_the_next_reset() {
        let mut slots = fresh();
        slots.boot().unwrap();
        install(&mut slots, "1.1.0");
        assert_eq!(slots.boot().unwrap().slot, 1);
        // Reset before confirming: the factory image runs again.
        assert_eq!(slots.boot().unwrap().slot, 0);
        assert_eq!(slots.rolled_back().unwrap(), Some((1, ImageState::Aborted)));
        assert_eq!(slots.version(0).unwrap().as_deref(), Some("1.0.0"));
        // A later update still works, into the slot that was refused.
        assert_eq!(install(&mut slots, "1.1.1"), 1);
        assert_eq!(slots.boot().unwrap().slot, 1);
    }

    /// A bootloader built without rollback (espflash's): it boots the
    /// slot of the highest valid record and writes nothing.
    fn plain_boot(slots: &mut Slots<MemFlash>) -> usize {
        slots.running().unwrap().slot
    }

    #[test]
    fn without_a_rollback_bootloader_the_application_rolls_back_itself() {
        let mut slots = fresh();
        let first = plain_boot(&mut slots);
        assert_eq!(
            slots.app_start(first).unwrap(),
            AppStart::Run(Booted {
                slot: 0,
                state: None
            })
        );
        assert_eq!(install(&mut slots, "1.1.0"), 1);
        // First boot of the new image: the application marks it pending.
        let booted = plain_boot(&mut slots);
        assert_eq!(booted, 1);
        assert_eq!(
            slots.app_start(booted).unwrap(),
            AppStart::Run(Booted {
                slot: 1,
                state: Some(ImageState::PendingVerify)
            })
        );
        // It resets without confirming: the next start rolls back.
        let booted = plain_boot(&mut slots);
        assert_eq!(slots.app_start(booted).unwrap(), AppStart::RollBack);
        let booted = plain_boot(&mut slots);
        assert_eq!(booted, 0);
        assert!(matches!(slots.app_start(booted).unwrap(), AppStart::Run(b) if b.slot == 0));
        assert_eq!(slots.rolled_back().unwrap(), Some((1, ImageState::Aborted)));
        // The next update goes into the refused slot, is confirmed and kept.
        assert_eq!(install(&mut slots, "1.2.0"), 1);
        let booted = plain_boot(&mut slots);
        slots.app_start(booted).unwrap();
        assert!(slots.confirm().unwrap());
        let booted = plain_boot(&mut slots);
        assert_eq!(
            slots.app_start(booted).unwrap(),
            AppStart::Run(Booted {
                slot: 1,
                state: Some(ImageState::Valid)
            })
        );
        assert_eq!(slots.rolled_back().unwrap(), None);
    }

    #[test]
    fn with_a_rollback_bootloader_the_application_leaves_rollback_to_it() {
        let mut slots = fresh();
        slots.boot().unwrap();
        install(&mut slots, "1.1.0");
        let booted = slots.boot().unwrap();
        // The bootloader marked it pending; the application runs it.
        assert_eq!(slots.app_start(booted.slot).unwrap(), AppStart::Run(booted));
        // Unconfirmed: the bootloader aborts it, the application runs slot 0.
        let booted = slots.boot().unwrap();
        assert_eq!(booted.slot, 0);
        assert!(matches!(slots.app_start(0).unwrap(), AppStart::Run(b) if b.slot == 0));
    }

    #[test]
    fn an_image_the_bootloader_did_not_start_is_refused() {
        let mut slots = fresh();
        install(&mut slots, "1.1.0");
        // otadata selects slot 1 but the chip runs slot 0 (slot 1 did not load).
        assert!(matches!(slots.app_start(0).unwrap(), AppStart::Run(b) if b.slot == 0));
        assert_eq!(slots.running().unwrap().slot, 0);
        assert_eq!(slots.rolled_back().unwrap(), Some((1, ImageState::Aborted)));
    }

    #[test]
    fn an_image_larger_than_a_slot_is_refused() {
        let mut slots = fresh();
        assert!(slots.begin(Layout::SIM.slot_size + 1).is_err());
    }
}
