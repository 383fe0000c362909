#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

/// NOR flash in RAM: erase sets 0xFF, a write can only clear bits, and a
/// write may be cut after `budget` bytes (power lost mid-write).
struct RamFlash {
    bytes: Vec<u8>,
    budget: Option<usize>,
}

impl RamFlash {
    fn new() -> RamFlash {
        RamFlash {
            bytes: vec![0xFF; PARTITION_SIZE as usize],
            budget: None,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Fault;

impl Flash for RamFlash {
    type Error = Fault;
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Fault> {
        assert_eq!((offset % 4, buf.len() % 4), (0, 0), "unaligned read");
        let start = offset as usize;
        buf.copy_from_slice(self.bytes.get(start..start + buf.len()).ok_or(Fault)?);
        Ok(())
    }
    fn erase_slot(&mut self, offset: u32) -> Result<(), Fault> {
        assert_eq!(offset % SLOT_SIZE, 0);
        let start = offset as usize;
        self.bytes
            .get_mut(start..start + SLOT_SIZE as usize)
            .ok_or(Fault)?
            .fill(0xFF);
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Fault> {
        assert_eq!((offset % 4, bytes.len() % 4), (0, 0), "unaligned write");
        let start = offset as usize;
        let count = self.budget.map_or(bytes.len(), |b| b.min(bytes.len()));
        let target = self.bytes.get_mut(start..start + count).ok_or(Fault)?;
        for (cell, byte) in target.iter_mut().zip(bytes) {
            *cell &= byte;
        }
        Ok(())
    }
}

fn identity(tag: u8, cert_len: usize) -> StoredIdentity {
    StoredIdentity {
        secret: [tag; 32],
        cert_pem: vec![b'A' + tag % 26; cert_len],
    }
}

#[test]
fn crc_is_zlibs() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn an_erased_partition_holds_nothing() {
    assert_eq!(load(&mut RamFlash::new()).unwrap(), None);
}

#[test]
fn saves_alternate_slots_and_the_newest_wins() {
    let mut flash = RamFlash::new();
    assert_eq!(save(&mut flash, &identity(1, 700)).unwrap(), 1);
    assert_eq!(load(&mut flash).unwrap(), Some((identity(1, 700), 1)));
    assert_eq!(save(&mut flash, &identity(2, 1501)).unwrap(), 2);
    assert_eq!(load(&mut flash).unwrap(), Some((identity(2, 1501), 2)));
    // The first record is still intact in slot 0; the third goes there.
    assert_eq!(&flash.bytes[..4], b"FMQI");
    assert_eq!(save(&mut flash, &identity(3, 3)).unwrap(), 3);
    assert_eq!(load(&mut flash).unwrap(), Some((identity(3, 3), 3)));
    assert_eq!(
        read_slot(&mut flash, 1).unwrap(),
        Some((identity(2, 1501), 2))
    );
}

#[test]
fn a_torn_write_keeps_the_previous_identity() {
    for cut in [0, 4, 16, 40, 600, 1200] {
        let mut flash = RamFlash::new();
        save(&mut flash, &identity(1, 900)).unwrap();
        flash.budget = Some(cut);
        assert_eq!(
            save(&mut flash, &identity(2, 1200)),
            Err(StoreError::Verify),
            "cut after {cut} bytes"
        );
        flash.budget = None;
        assert_eq!(
            load(&mut flash).unwrap(),
            Some((identity(1, 900), 1)),
            "cut after {cut} bytes"
        );
        // The next save succeeds and wins.
        assert_eq!(save(&mut flash, &identity(4, 10)).unwrap(), 2);
        assert_eq!(load(&mut flash).unwrap(), Some((identity(4, 10), 2)));
    }
}

#[test]
fn corrupted_bytes_anywhere_in_a_record_are_detected() {
    let mut flash = RamFlash::new();
    save(&mut flash, &identity(7, 64)).unwrap();
    let record_len = HEADER + SECRET + 64 + 4;
    for at in 0..record_len {
        let mut damaged = RamFlash {
            bytes: flash.bytes.clone(),
            budget: None,
        };
        damaged.bytes[at] ^= 0x01;
        assert_eq!(load(&mut damaged).unwrap(), None, "bit flipped at {at}");
    }
}

#[test]
fn lengths_outside_a_slot_are_refused() {
    let mut flash = RamFlash::new();
    let too_big = identity(1, MAX_BODY - SECRET + 1);
    assert_eq!(save(&mut flash, &too_big), Err(StoreError::TooLarge));
    let fits = identity(1, MAX_BODY - SECRET);
    assert_eq!(save(&mut flash, &fits).unwrap(), 1);
    assert_eq!(load(&mut flash).unwrap(), Some((fits, 1)));
    // A header that claims more than a slot is ignored, not read past.
    let mut forged = RamFlash::new();
    forged.bytes[..16].copy_from_slice(b"FMQI\x01\0\0\0\x09\0\0\0\xff\xff\0\0");
    assert_eq!(load(&mut forged).unwrap(), None);
}
