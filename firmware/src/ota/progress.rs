//! A download's progress kept in flash, so that a device reset (power
//! cut, watchdog, crash) in the middle of a download resumes it instead
//! of starting from chunk 0 (docs/ota.md, decision 0174).
//!
//! One flash sector ([`Layout::progress`]): a header written once when a
//! download starts (magic, the slot, the signed manifest as offered),
//! then a log of 8-byte entries `next chunk (u32 LE) | its complement`
//! programmed into erased bytes one after the other; the last complete
//! entry counts. A torn entry fails its complement and is ignored; a full
//! log is compacted (erase, header, one entry). One sector erase per
//! ~380 chunks, not one per chunk.
//!
//! Owns: the sector's format. Must not decide whether to trust what it
//! reads: the agent checks the manifest's signature again and that the
//! slot is still the one that does not run.

use alloc::vec;
use alloc::vec::Vec;

use super::flash::{FlashError, Layout, OtaFlash, SECTOR};

const MAGIC: &[u8; 4] = b"FQOP";
/// Bytes of the header; the manifest must fit after its 8 fixed bytes.
const HEADER: u32 = 1024;
/// Longest manifest kept (longer ones are not persisted: the download
/// still works, it restarts from zero after a reset).
pub const MAX_MANIFEST: usize = HEADER as usize - 8;
const ENTRY: u32 = 8;

/// What a download had reached before the reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// The offer's bytes (manifest and signature).
    pub manifest: Vec<u8>,
    /// The slot being written.
    pub slot: usize,
    /// The next chunk to fetch (every one before it was written and read back).
    pub next: u32,
}

/// Forgets any saved download.
pub fn clear<F: OtaFlash>(flash: &mut F, layout: &Layout) -> Result<(), FlashError> {
    match layout.progress {
        Some(at) => flash.erase(at, SECTOR),
        None => Ok(()),
    }
}

/// Starts a record for a download of `manifest` into `slot` at chunk
/// `next`. False when it cannot be kept (no sector, manifest too long).
pub fn start<F: OtaFlash>(
    flash: &mut F,
    layout: &Layout,
    manifest: &[u8],
    slot: usize,
    next: u32,
) -> Result<bool, FlashError> {
    let Some(at) = layout.progress else {
        return Ok(false);
    };
    flash.erase(at, SECTOR)?;
    if manifest.len() > MAX_MANIFEST {
        return Ok(false);
    }
    let mut header = vec![0xFFu8; 8 + manifest.len()];
    header[0..4].copy_from_slice(MAGIC);
    header[4..6].copy_from_slice(&(manifest.len() as u16).to_le_bytes());
    header[6] = slot as u8;
    header[7] = 0;
    header[8..].copy_from_slice(manifest);
    flash.write(at, &header)?;
    write_entry(flash, at + HEADER, next)?;
    Ok(true)
}

fn write_entry<F: OtaFlash>(flash: &mut F, at: u32, next: u32) -> Result<(), FlashError> {
    let mut entry = [0u8; ENTRY as usize];
    entry[0..4].copy_from_slice(&next.to_le_bytes());
    entry[4..8].copy_from_slice(&(!next).to_le_bytes());
    flash.write(at, &entry)
}

/// Where the entries are, and the index of the first erased one.
fn scan<F: OtaFlash>(flash: &mut F, at: u32) -> Result<(Option<u32>, u32), FlashError> {
    let mut last = None;
    let mut entries = [0u8; (SECTOR - HEADER) as usize];
    flash.read(at + HEADER, &mut entries)?;
    let mut free = 0;
    for (index, entry) in entries.chunks_exact(ENTRY as usize).enumerate() {
        let word =
            |i: usize| u32::from_le_bytes([entry[i], entry[i + 1], entry[i + 2], entry[i + 3]]);
        if entry.iter().all(|b| *b == 0xFF) {
            break;
        }
        free = index as u32 + 1;
        if word(0) == !word(4) {
            last = Some(word(0));
        }
    }
    Ok((last, free))
}

/// Records that every chunk before `next` is written.
pub fn record<F: OtaFlash>(flash: &mut F, layout: &Layout, next: u32) -> Result<(), FlashError> {
    let Some(at) = layout.progress else {
        return Ok(());
    };
    let (_, free) = scan(flash, at)?;
    if free < (SECTOR - HEADER) / ENTRY {
        return write_entry(flash, at + HEADER + free * ENTRY, next);
    }
    // Full: compact.
    let Some(saved) = load(flash, layout)? else {
        return Ok(());
    };
    start(flash, layout, &saved.manifest, saved.slot, next).map(|_| ())
}

/// The saved download, if any.
pub fn load<F: OtaFlash>(flash: &mut F, layout: &Layout) -> Result<Option<Saved>, FlashError> {
    let Some(at) = layout.progress else {
        return Ok(None);
    };
    let mut fixed = [0u8; 8];
    flash.read(at, &mut fixed)?;
    if &fixed[0..4] != MAGIC {
        return Ok(None);
    }
    let len = usize::from(u16::from_le_bytes([fixed[4], fixed[5]]));
    if len > MAX_MANIFEST || fixed[6] > 1 {
        return Ok(None);
    }
    let mut manifest = vec![0u8; len];
    flash.read(at + 8, &mut manifest)?;
    let (next, _) = scan(flash, at)?;
    Ok(next.map(|next| Saved {
        manifest,
        slot: usize::from(fixed[6]),
        next,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::flash::MemFlash;
    use super::*;

    #[test]
    fn the_last_entry_counts_and_a_full_log_is_compacted() {
        let layout = Layout::SIM;
        let mut flash = MemFlash::new(layout.end());
        assert_eq!(load(&mut flash, &layout).unwrap(), None);
        assert!(start(&mut flash, &layout, b"manifest", 1, 0).unwrap());
        for next in 1..=1000 {
            record(&mut flash, &layout, next).unwrap();
        }
        let saved = load(&mut flash, &layout).unwrap().unwrap();
        assert_eq!(
            saved,
            Saved {
                manifest: b"manifest".to_vec(),
                slot: 1,
                next: 1000
            }
        );
        clear(&mut flash, &layout).unwrap();
        assert_eq!(load(&mut flash, &layout).unwrap(), None);
    }

    #[test]
    fn a_torn_entry_is_ignored() {
        let layout = Layout::SIM;
        let at = layout.progress.unwrap();
        let mut flash = MemFlash::new(layout.end());
        start(&mut flash, &layout, b"m", 0, 0).unwrap();
        record(&mut flash, &layout, 7).unwrap();
        // Half of the next entry programmed, then the power went.
        flash
            .write(at + HEADER + 2 * ENTRY, &8u32.to_le_bytes())
            .unwrap();
        assert_eq!(load(&mut flash, &layout).unwrap().unwrap().next, 7);
        // Later entries go after the torn one.
        record(&mut flash, &layout, 9).unwrap();
        assert_eq!(load(&mut flash, &layout).unwrap().unwrap().next, 9);
    }
}
