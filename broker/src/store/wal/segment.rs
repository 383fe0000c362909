//! WAL segment files: `<store file>.wal/<first LSN, 20 digits>.wal`, each
//! a run of frames with consecutive LSNs, then possibly zeros. The writer
//! appends to the last one and starts a new one after a checkpoint's
//! worth of bytes; older segments are deleted once a checkpoint holds all
//! their groups.
//!
//! Zeros ahead: a frame is written into bytes the file already has, so
//! its fdatasync flushes data only. An append that grows the file also
//! changes its size, and ext4 then commits its journal too (measured
//! here: about 140 µs per fdatasync instead of about 100). So when a frame
//! would pass the end of the file, zeros are written ahead of it first:
//! as many as the segment already holds, between 4 KiB and 1 MiB, so a
//! trickle of groups writes little and a busy log grows the file about
//! once per MiB. If the zeros do not fit (a full disk), the frame is
//! appended as before. Zeros after the last frame are no frame: `recover`
//! reads them as the end of the log.
//!
//! It owns file names, appending and reading back; it must not decide
//! whether a bad frame is a torn tail or damage (that is `recover`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The WAL directory of a store file.
pub fn dir_for(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".wal");
    PathBuf::from(name)
}

/// The path of the segment whose first group is `first_lsn`.
pub fn path_for(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(format!("{first_lsn:020}.wal"))
}

/// The segments in `dir` as (first LSN, path), oldest first; other files
/// are left alone. No directory: none.
pub fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(number) = name.strip_suffix(".wal") else {
            continue;
        };
        if number.len() == 20 {
            if let Ok(first) = number.parse::<u64>() {
                segments.push((first, entry.path()));
            }
        }
    }
    segments.sort();
    Ok(segments)
}

/// Makes a created or deleted file name durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The segment being appended to.
#[derive(Debug)]
pub struct Segment {
    pub file: std::sync::Arc<File>,
    pub path: PathBuf,
    pub first_lsn: u64,
    /// Bytes of whole frames written so far: where the next one goes.
    pub end: u64,
    /// The file's length: `end`, then zeros written ahead.
    pub len: u64,
}

/// Zeros written ahead of a growing segment: at least this many...
const AHEAD_MIN: u64 = 4 << 10;
/// ...and at most this many.
const AHEAD_MAX: u64 = 1 << 20;
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

impl Segment {
    /// Creates a new, empty segment and makes its name durable, so a
    /// frame fsynced into it cannot vanish with its directory entry.
    pub fn create(dir: &Path, first_lsn: u64) -> std::io::Result<Segment> {
        std::fs::create_dir_all(dir)?;
        let path = path_for(dir, first_lsn);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        sync_dir(dir)?;
        Ok(Segment {
            file: std::sync::Arc::new(file),
            path,
            first_lsn,
            end: 0,
            len: 0,
        })
    }

    /// Writes `frames` at the end (not synced). On failure nothing counts:
    /// the end stays where it was and what a partial write left is cut.
    pub fn append(&mut self, frames: &[u8]) -> std::io::Result<(u64, u64)> {
        let start = self.end;
        let end = start + frames.len() as u64;
        if end > self.len {
            self.zero_ahead(end);
        }
        match self.file.write_all_at(frames, start) {
            Ok(()) => {
                self.end = end;
                self.len = self.len.max(end);
                Ok((start, end))
            }
            Err(error) => {
                self.rewind(start);
                Err(error)
            }
        }
    }

    /// Grows the file with zeros past `needed` (see the module doc); on
    /// failure the file keeps its length and the append grows it.
    fn zero_ahead(&mut self, needed: u64) {
        let ahead = self.end.clamp(AHEAD_MIN, AHEAD_MAX);
        let target = (needed + ahead).next_multiple_of(AHEAD_MIN);
        let mut at = self.len;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            if self.file.write_all_at(&ZEROS[..n], at).is_err() {
                let _ = self.file.set_len(self.len);
                return;
            }
            at += n as u64;
        }
        self.len = target;
    }

    /// Forgets everything from `offset` on (frames whose fsync failed,
    /// rewritten by the retry), zeros ahead included.
    pub fn rewind(&mut self, offset: u64) {
        self.end = offset;
        self.len = offset;
        let _ = self.file.set_len(offset);
    }
}
