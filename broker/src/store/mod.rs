//! The redb store: the [`StoreBackend`] behind fleetmq's [`Store`] on one
//! machine. Opening reads the whole file (every record must decode, a
//! damaged file is left exactly as it was found), then a writer thread
//! applies ops in groups, one redb write transaction and one fsync per
//! group, retrying and reopening the file while commits fail.
//!
//! - `restore` reads every table at start.
//! - `apply` applies ops to the tables in one transaction.
//! - `writer` is the writer thread: grouping per fsync policy, commits,
//!   retries, the progress of tickets.
//! - `wal` is the write-ahead log in front of redb (`store.wal`, on by
//!   default, decision 0178); its recovery runs at every open, with the
//!   log on or off.
//!
//! The vocabulary (ops, records, tickets, health) and the handle the
//! engine uses are `fleetmq_core::store`; this module must not be reached
//! from the data path other than through that handle's channel.

mod apply;
mod restore;
pub mod wal;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;

use fleetmq_core::config::StoreConfig;
use fleetmq_core::store::{Op, Progress, Restored, Store, StoreBackend, StoreError, StoreHealth};
use tokio::sync::watch;

/// Opens (or creates) the store, reads everything in it, and starts the
/// writer. Fails, naming the file, when the store cannot be read whole.
pub fn open(data_dir: &Path, config: &StoreConfig) -> Result<(Arc<Store>, Restored), StoreError> {
    let path = if config.path.is_absolute() {
        config.path.clone()
    } else {
        data_dir.join(&config.path)
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    }
    // The log is read and checked before anything is touched: damage
    // stops the start with both files as they were.
    let wal_dir = wal::segment::dir_for(&path);
    let mut log = wal::recover::read(&wal_dir)?;
    let (database, restored, next_lsn) = open_untouched_on_failure(&path, |database| {
        let (database, next_lsn) = wal::recover::replay(database, &path, &mut log)?;
        let restored = restore::read_all(&database, &path)?;
        Ok((database, restored, next_lsn))
    })?;
    wal::recover::discard(&wal_dir, &log)?;
    let next_seq = restored.max_seq + 1;
    let store = if config.wal {
        let backend = wal::WalBackend {
            database,
            path,
            config: config.clone(),
            next_lsn,
        };
        Store::start(backend, config.fsync, next_seq)?
    } else {
        let backend = RedbBackend {
            database,
            path,
            config: config.clone(),
        };
        Store::start(backend, config.fsync, next_seq)?
    };
    Ok((store, restored))
}

/// An opened redb file, ready to become the writer thread.
struct RedbBackend {
    database: redb::Database,
    path: PathBuf,
    config: StoreConfig,
}

impl StoreBackend for RedbBackend {
    fn start(
        self,
        ops: Receiver<(u64, Op)>,
        progress: watch::Sender<Progress>,
        health: Arc<StoreHealth>,
    ) -> Result<JoinHandle<()>, StoreError> {
        let writer = writer::Writer::new(self.database, self.path, self.config, progress, health);
        std::thread::Builder::new()
            .name("fleetmq-store".into())
            .spawn(move || writer.run(ops))
            .map_err(StoreError::Thread)
    }
}

/// The memory redb may keep for its pages (its default is 1 GiB). The
/// store is read whole once, at open, and the broker then holds every
/// record itself; afterwards redb reads only the B-tree pages a write
/// transaction walks. A large cache would hold a second copy of every
/// durable message on the heap, counted against `limits.memory_limit`
/// and never given back (decision 0192). Half of it at most is the write
/// buffer: a larger transaction (a checkpoint of the log) writes its
/// excess pages to the file before its commit, which changes nothing of
/// what is durable.
const CACHE_BYTES: usize = 4 << 20;

/// redb's builder with the store's settings: every place that opens the
/// store file starts here, so none forgets the cache bound.
fn database_builder() -> redb::Builder {
    let mut builder = redb::Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    builder
}

/// How much of the file's start redb rewrites when it merely opens a file:
/// its header, whose "recovery required" flag is set on every open.
const HEADER_BYTES: u64 = 4096;

/// Opens the database, checking every page's checksum (a file changed
/// outside redb fails here instead of being trusted), and runs `then`
/// (replay the log, read it whole). When either fails, the file is put
/// back as it was found: redb has already rewritten its header by then,
/// and a damaged store must be left for its owner to inspect, exactly as
/// it was.
fn open_untouched_on_failure<T>(
    path: &Path,
    then: impl FnOnce(redb::Database) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let before = FileStart::read(path);
    let opened = database_builder()
        .set_check_integrity_on_open(true)
        .create(path)
        .map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
        .and_then(then);
    if opened.is_err() {
        // The Database (if any) is closed by now; closing may write too.
        if let Some(before) = before {
            if let Err(error) = before.put_back(path) {
                tracing::error!(
                    "Could not restore the header of {} after the failed open: {error}.",
                    path.display()
                );
            }
        }
    }
    opened
}

/// The header bytes and length of an existing store file.
struct FileStart {
    header: Vec<u8>,
    len: u64,
}

impl FileStart {
    /// None when there is no file, or an empty one (nothing to protect).
    fn read(path: &Path) -> Option<FileStart> {
        use std::io::Read;
        let file = std::fs::File::open(path).ok()?;
        let len = file.metadata().ok()?.len();
        if len == 0 {
            return None;
        }
        let mut header = Vec::new();
        file.take(HEADER_BYTES).read_to_end(&mut header).ok()?;
        Some(FileStart { header, len })
    }

    /// Writes the header back and cuts what a failed open appended.
    /// Pages redb wrote meanwhile were free in the old header's view.
    fn put_back(&self, path: &Path) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&self.header)?;
        if file.metadata()?.len() > self.len {
            file.set_len(self.len)?;
        }
        file.sync_all()
    }
}
