//! Recovery at open: read every WAL segment, tell a torn tail (the
//! groups a crash caught before their fsync ended: never acknowledged)
//! from damage (a bad frame with valid ones after it, a gap in the LSNs,
//! a frame whose ops do not decode), then replay the groups the redb file
//! does not hold yet in one transaction.
//!
//! Zeros after the last frame of a segment are the room `segment` writes
//! ahead of its frames, not a torn write.
//!
//! Damage stops the start with the segment and offset named, touching
//! nothing. A bad *last* frame cannot be told from a torn write, so it is
//! dropped like one (decision 0178 says what that risks).

use std::path::{Path, PathBuf};

use redb::Database;

use fleetmq_core::store::{Op, StoreError};

use super::frame::{self, Group, Parsed};
use super::segment;
use crate::store::apply::{self, Applier, Checkpoint};

/// What the WAL directory held.
#[derive(Debug, Default)]
pub struct Log {
    /// Every whole group, in LSN order.
    pub groups: Vec<Group>,
    /// The segment files read, to delete once their groups are in redb.
    pub files: Vec<PathBuf>,
    /// Bytes of torn tail dropped.
    pub torn_bytes: usize,
}

fn damaged(path: &Path, offset: usize, detail: impl ToString) -> StoreError {
    StoreError::Damaged {
        path: path.to_path_buf(),
        table: "write-ahead log",
        key: format!("offset {offset}"),
        detail: detail.to_string(),
    }
}

/// Reads and checks the whole log in `dir` (none: empty).
pub fn read(dir: &Path) -> Result<Log, StoreError> {
    let open_error = |e: std::io::Error| StoreError::Open {
        path: dir.to_path_buf(),
        detail: e.to_string(),
    };
    let segments = segment::list(dir).map_err(open_error)?;
    let mut log = Log::default();
    let mut expected: Option<u64> = None;
    let count = segments.len();
    for (index, (first_lsn, path)) in segments.into_iter().enumerate() {
        let bytes = std::fs::read(&path).map_err(open_error)?;
        let last_segment = index + 1 == count;
        if expected.is_some_and(|e| e != first_lsn) && !bytes.is_empty() {
            return Err(damaged(&path, 0, "a segment is missing before this one"));
        }
        let mut offset = 0;
        let mut want = first_lsn;
        while offset < bytes.len() {
            match frame::parse(&bytes[offset..]) {
                Parsed::Frame { lsn, body, len } => {
                    if lsn != want {
                        return Err(damaged(
                            &path,
                            offset,
                            format!("group {lsn} where group {want} was expected"),
                        ));
                    }
                    let ops = frame::get_ops(&body).map_err(|e| damaged(&path, offset, e))?;
                    log.groups.push(Group { lsn, ops });
                    offset += len;
                    want += 1;
                }
                // Zeros written ahead of the frames (`segment`): the end
                // of this segment's groups, in any segment.
                Parsed::Short | Parsed::Bad(_) if bytes[offset..].iter().all(|&b| b == 0) => {
                    break;
                }
                Parsed::Short | Parsed::Bad(_) if last_segment => {
                    if let Some(at) = valid_frame_after(&bytes, offset, want) {
                        return Err(damaged(
                            &path,
                            offset,
                            format!("unreadable group followed by a whole one at offset {at}"),
                        ));
                    }
                    log.torn_bytes = bytes.len() - offset;
                    break;
                }
                Parsed::Short => {
                    return Err(damaged(&path, offset, "segment ends inside a group"));
                }
                Parsed::Bad(why) => return Err(damaged(&path, offset, why)),
            }
        }
        expected = Some(want);
        log.files.push(path);
    }
    Ok(log)
}

/// The offset of a whole frame with an LSN of at least `lsn` after
/// `from`, if any: then the bad frame at `from` is not a torn tail.
fn valid_frame_after(bytes: &[u8], from: usize, lsn: u64) -> Option<usize> {
    let magic = frame::MAGIC.to_be_bytes();
    (from + 1..bytes.len().saturating_sub(frame::HEADER - 1)).find(|&at| {
        bytes[at..].starts_with(&magic)
            && matches!(frame::parse(&bytes[at..]), Parsed::Frame { lsn: found, .. } if found >= lsn)
    })
}

/// Applies the groups `database` does not hold yet, in one transaction
/// that also records the last one; returns the database and the next
/// LSN to write.
pub fn replay(
    database: Database,
    path: &Path,
    log: &mut Log,
) -> Result<(Database, u64), StoreError> {
    let open_error = |detail: String| StoreError::Open {
        path: path.to_path_buf(),
        detail,
    };
    let (applied, early) = apply::wal_state(&database)
        .map_err(|e| open_error(format!("reading its write-ahead log state: {e}")))?;
    let last = log.groups.last().map_or(0, |g| g.lsn).max(applied);
    let pending: Vec<Group> = std::mem::take(&mut log.groups)
        .into_iter()
        .filter(|g| g.lsn > applied)
        .collect();
    if let Some(first) = pending.first() {
        if first.lsn != applied + 1 {
            return Err(StoreError::Damaged {
                path: path.to_path_buf(),
                table: "write-ahead log",
                key: format!("group {}", first.lsn),
                detail: format!(
                    "the store holds groups up to {applied}, the log starts at {}",
                    first.lsn
                ),
            });
        }
    }
    if pending.is_empty() && early.is_empty() {
        return Ok((database, last + 1));
    }
    let groups = pending.len();
    let mut applier = Applier::new(database, path.to_path_buf()).with_early(early);
    applier.backlog = pending
        .into_iter()
        .flat_map(|g| g.ops)
        .map(|op: Op| (0, op))
        .collect();
    let ops = applier.backlog.len();
    applier
        .commit_backlog(Some(Checkpoint {
            lsn: last,
            keep_early: false,
        }))
        .map_err(|e| open_error(format!("replaying its write-ahead log failed: {e}")))?;
    if groups > 0 {
        tracing::info!(
            "Replayed {groups} groups ({ops} changes) from the write-ahead log of {}.",
            path.display()
        );
    }
    let database = applier
        .into_database()
        .ok_or_else(|| open_error("the store closed during replay".into()))?;
    Ok((database, last + 1))
}

/// Deletes the segments whose groups are now in redb.
pub fn discard(dir: &Path, log: &Log) -> Result<(), StoreError> {
    let open_error = |e: std::io::Error| StoreError::Open {
        path: dir.to_path_buf(),
        detail: format!("cannot delete a replayed write-ahead log segment: {e}"),
    };
    if log.torn_bytes > 0 {
        tracing::warn!(
            "Dropped a torn write of {} bytes at the end of the write-ahead log in {} \
             (changes whose fsync a crash interrupted; none was acknowledged).",
            log.torn_bytes,
            dir.display()
        );
    }
    for file in &log.files {
        std::fs::remove_file(file).map_err(open_error)?;
    }
    if !log.files.is_empty() {
        segment::sync_dir(dir).map_err(open_error)?;
    }
    Ok(())
}
