//! TLS session ticket keys that survive a broker restart, so a fleet that
//! reconnects after an upgrade or a crash resumes its sessions (no
//! public-key operation for TLS 1.2, only X25519 for TLS 1.3) instead of
//! doing 10,000 full handshakes at once.
//!
//! It owns the ticket keys of a process and their file,
//! `<data_dir>/tls-ticket-keys`: a current and a previous AES-256-GCM key,
//! each with its creation time. The current key encrypts; a ticket names
//! its key by an id prefix, so tickets of the previous key still decrypt
//! until it ages out. Keys rotate every [`KEY_ROTATION`] (6 h) and tickets
//! live [`TICKET_LIFETIME_SECS`] (12 h), as with rustls's own `Ticketer`.
//!
//! It must not weaken what an in-memory ticketer gives:
//! - the file is a secret (whoever reads it can decrypt the tickets, and a
//!   ticket carries its session's resumption secret): created and rewritten
//!   with mode 0600, replaced atomically (temp file, fsync, rename), never
//!   logged;
//! - a missing, unreadable or corrupt file is a warning and fresh keys,
//!   never a crash; where the file cannot be written the keys stay in
//!   memory, as before;
//! - one key set serves every listener of the process (one file, one
//!   writer), but each listener's name is authenticated with its tickets
//!   (AES-GCM associated data), so a ticket issued on one listener never
//!   resumes on another whose client CA or policy differ.
//!
//! Every ticket gets a fresh random 96-bit nonce; a key encrypts for six
//! hours, far below the 2^32 tickets per key where random nonces start to
//! be a concern.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use parking_lot::{Mutex, RwLock};
use rustls::server::ProducesTickets;

/// The key file's name in the data directory.
pub const TICKET_KEY_FILE: &str = "tls-ticket-keys";

/// How long a key encrypts new tickets.
pub const KEY_ROTATION: Duration = Duration::from_secs(6 * 60 * 60);

/// How long a client may use a ticket (what rustls's `Ticketer` announces).
pub const TICKET_LIFETIME_SECS: u32 = 12 * 60 * 60;

const KEY_ID_LEN: usize = 8;
const SECRET_LEN: usize = 32;
const FILE_HEADER: &str = "# fleetmq TLS session ticket keys: SECRET, keep mode 0600.\n\
# Whoever reads this file can decrypt resumed TLS sessions. Delete it to force fresh keys.\n";

/// One AES-256-GCM key with its id and creation time (Unix seconds).
struct TicketKey {
    id: [u8; KEY_ID_LEN],
    created: u64,
    secret: [u8; SECRET_LEN],
    aead: LessSafeKey,
}

impl TicketKey {
    fn from_parts(id: [u8; KEY_ID_LEN], created: u64, secret: [u8; SECRET_LEN]) -> Option<Self> {
        let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &secret).ok()?);
        Some(TicketKey {
            id,
            created,
            secret,
            aead,
        })
    }

    fn generate(rng: &SystemRandom, created: u64) -> Result<TicketKey, rustls::Error> {
        let mut id = [0; KEY_ID_LEN];
        let mut secret = [0; SECRET_LEN];
        rng.fill(&mut id)
            .and_then(|()| rng.fill(&mut secret))
            .map_err(|_| rustls::Error::FailedToGetRandomBytes)?;
        TicketKey::from_parts(id, created, secret).ok_or(rustls::Error::FailedToGetRandomBytes)
    }

    /// True when this key should no longer encrypt at `now`. A creation
    /// time far in the future (the clock was set back) counts as due too,
    /// or the key could stay in use for years.
    fn rotation_due(&self, now: u64) -> bool {
        let period = KEY_ROTATION.as_secs();
        now >= self.created.saturating_add(period) || self.created > now.saturating_add(period)
    }

    fn line(&self, role: &str) -> String {
        format!(
            "{role} {} {} {}\n",
            self.created,
            hex(&self.id),
            hex(&self.secret)
        )
    }
}

/// The keys in use.
struct KeySet {
    current: TicketKey,
    previous: Option<TicketKey>,
}

impl KeySet {
    fn to_file_text(&self) -> String {
        let mut text = FILE_HEADER.to_string();
        text.push_str(&self.current.line("current"));
        if let Some(previous) = &self.previous {
            text.push_str(&previous.line("previous"));
        }
        text
    }

    /// Parses the key file; None when anything is off.
    fn parse(text: &str) -> Option<KeySet> {
        let mut current = None;
        let mut previous = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_ascii_whitespace();
            let role = fields.next()?;
            let created = fields.next()?.parse().ok()?;
            let id = unhex::<KEY_ID_LEN>(fields.next()?)?;
            let secret = unhex::<SECRET_LEN>(fields.next()?)?;
            if fields.next().is_some() {
                return None;
            }
            let key = TicketKey::from_parts(id, created, secret)?;
            let slot = match role {
                "current" => &mut current,
                "previous" => &mut previous,
                _ => return None,
            };
            if slot.replace(key).is_some() {
                return None;
            }
        }
        Some(KeySet {
            current: current?,
            previous,
        })
    }
}

/// The ticket keys of a process, shared by its TLS listeners.
pub struct TicketKeys {
    keys: RwLock<KeySet>,
    /// Where the keys are kept; None: in memory only.
    file: Option<PathBuf>,
    /// Serializes file writes, so the last write holds the newest keys.
    writing: Mutex<()>,
    rng: SystemRandom,
}

impl fmt::Debug for TicketKeys {
    /// Never the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKeys")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl TicketKeys {
    /// The keys of `<data_dir>/tls-ticket-keys`: read when the file is
    /// good, otherwise fresh ones (with a warning saying why) written
    /// there. Fails only when the system has no random numbers.
    pub fn open(data_dir: &Path) -> Result<Arc<TicketKeys>, rustls::Error> {
        TicketKeys::open_at(Some(data_dir.join(TICKET_KEY_FILE)), unix_now())
    }

    /// Keys that live in memory only (no data directory to keep them in).
    pub fn in_memory() -> Result<Arc<TicketKeys>, rustls::Error> {
        TicketKeys::open_at(None, unix_now())
    }

    fn open_at(file: Option<PathBuf>, now: u64) -> Result<Arc<TicketKeys>, rustls::Error> {
        let rng = SystemRandom::new();
        let loaded = file.as_deref().and_then(load);
        let fresh = loaded.is_none();
        let keys = match loaded {
            Some(keys) => keys,
            None => KeySet {
                current: TicketKey::generate(&rng, now)?,
                previous: None,
            },
        };
        let keys = Arc::new(TicketKeys {
            keys: RwLock::new(keys),
            file,
            writing: Mutex::new(()),
            rng,
        });
        let rotated = keys.rotate_if_due(now)?;
        if fresh && !rotated {
            keys.persist();
        }
        Ok(keys)
    }

    /// The ticketer of one listener: these keys, with tickets bound to
    /// the listener's name.
    pub fn for_listener(self: &Arc<Self>, listener: Arc<str>) -> Arc<dyn ProducesTickets> {
        Arc::new(ListenerTickets {
            keys: Arc::clone(self),
            listener,
        })
    }

    /// Makes a new current key when the current one is old enough; the
    /// current one becomes the previous one (the older previous one goes).
    /// True when it rotated.
    fn rotate_if_due(&self, now: u64) -> Result<bool, rustls::Error> {
        if !self.keys.read().current.rotation_due(now) {
            return Ok(false);
        }
        {
            let mut keys = self.keys.write();
            if !keys.current.rotation_due(now) {
                return Ok(false);
            }
            let fresh = TicketKey::generate(&self.rng, now)?;
            let old = std::mem::replace(&mut keys.current, fresh);
            // A key that stopped encrypting a lifetime ago has no live
            // tickets left (after a long stop, say).
            let lifetime = u64::from(TICKET_LIFETIME_SECS);
            keys.previous = (now < old.created.saturating_add(lifetime)).then_some(old);
        }
        self.persist();
        Ok(true)
    }

    /// Writes the keys to their file, if they have one; a failure is a
    /// warning (the keys work, they just will not survive a restart).
    fn persist(&self) {
        let Some(file) = &self.file else {
            return;
        };
        let _writing = self.writing.lock();
        let text = self.keys.read().to_file_text();
        if let Err(error) = write_secret_atomically(file, text.as_bytes()) {
            tracing::warn!(
                "Cannot write the TLS ticket keys to {}: {error}. Devices will not resume their TLS sessions after a restart.",
                file.display()
            );
        }
    }

    fn encrypt(&self, context: &[u8], plain: &[u8], now: u64) -> Option<Vec<u8>> {
        self.rotate_if_due(now).ok()?;
        let mut nonce = [0; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let keys = self.keys.read();
        let key = &keys.current;
        let mut sealed = plain.to_vec();
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut sealed,
            )
            .ok()?;
        let mut ticket = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + sealed.len());
        ticket.extend_from_slice(&key.id);
        ticket.extend_from_slice(&nonce);
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt(&self, context: &[u8], ticket: &[u8], now: u64) -> Option<Vec<u8>> {
        self.rotate_if_due(now).ok()?;
        let (id, rest) = ticket.split_at_checked(KEY_ID_LEN)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let keys = self.keys.read();
        let key = std::iter::once(&keys.current)
            .chain(keys.previous.as_ref())
            .find(|key| key.id == id)?;
        let mut opened = sealed.to_vec();
        let plain_len = key
            .aead
            .open_in_place(nonce, Aad::from(context), &mut opened)
            .ok()?
            .len();
        opened.truncate(plain_len);
        Some(opened)
    }
}

/// One listener's view of the shared keys (see the module doc).
struct ListenerTickets {
    keys: Arc<TicketKeys>,
    /// Authenticated with every ticket: tickets do not cross listeners.
    listener: Arc<str>,
}

impl fmt::Debug for ListenerTickets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerTickets")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl ProducesTickets for ListenerTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.keys
            .encrypt(self.listener.as_bytes(), plain, unix_now())
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.keys
            .decrypt(self.listener.as_bytes(), cipher, unix_now())
    }
}

/// The keys in `file`, or None (with a warning unless it does not exist).
fn load(file: &Path) -> Option<KeySet> {
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(
                "Cannot read the TLS ticket keys {}: {error}; starting with fresh keys (devices make full handshakes once).",
                file.display()
            );
            return None;
        }
    };
    if let Ok(meta) = fs::metadata(file) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "The TLS ticket keys {} are readable by others (mode {mode:o}); they are secret: chmod 600 it. They are rewritten with mode 600 at the next rotation.",
                file.display()
            );
        }
    }
    let keys = KeySet::parse(&text);
    if keys.is_none() {
        tracing::warn!(
            "The TLS ticket keys {} are damaged; starting with fresh keys (devices make full handshakes once).",
            file.display()
        );
    }
    keys
}

/// Writes `bytes` to a fresh sibling file of mode 0600, syncs it, renames
/// it over `path` and syncs the folder: readers see the old keys or the
/// new ones, never a mix, and never a window with wider permissions.
fn write_secret_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    // A data directory made here holds a secret: private, like the lab PKI's.
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)?;
    let tmp = path.with_extension("tmp");
    // A leftover from a crash may have another mode; start from nothing.
    match fs::remove_file(&tmp) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    fs::File::open(folder)?.sync_all()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
#[path = "tickets_tests.rs"]
mod tests;
