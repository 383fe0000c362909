//! The simulated device's flash: one file per device
//! (`<--ota-flash DIR>/<client id>.flash`) laid out as [`Layout::SIM`]
//! (otadata, ota_0, ota_1), so the library's slot logic runs unchanged.
//! A new file holds the factory image in ota_0 and no otadata record, as
//! a freshly flashed ESP32.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use fleetmq_firmware::ota::flash::{FlashError, Layout, OtaFlash};

/// A flash file.
pub struct FileFlash(File);

impl FileFlash {
    /// Opens `path`, creating it erased with `factory` in ota_0.
    pub fn open(path: &Path, factory: &[u8]) -> Result<FileFlash, String> {
        let fresh = !path.exists();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let flash = FileFlash(file);
        if fresh {
            let layout = Layout::SIM;
            flash
                .0
                .write_all_at(&vec![0xFF; layout.end() as usize], 0)
                .and_then(|()| flash.0.write_all_at(factory, u64::from(layout.slots[0])))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(flash)
    }
}

fn error(e: std::io::Error) -> FlashError {
    FlashError(e.to_string())
}

impl OtaFlash for FileFlash {
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        self.0.read_exact_at(buf, u64::from(offset)).map_err(error)
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        self.0.write_all_at(data, u64::from(offset)).map_err(error)
    }

    fn erase(&mut self, offset: u32, len: u32) -> Result<(), FlashError> {
        self.0
            .write_all_at(&vec![0xFF; len as usize], u64::from(offset))
            .map_err(error)
    }
}
