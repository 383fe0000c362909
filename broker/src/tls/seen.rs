//! The client certificates the broker has seen: each distinct leaf once,
//! appended to the PEM bundle `<data_dir>/seen-certificates/seen.pem`,
//! for `fleetmq certs audit --seen` (decision 0094; folders of earlier
//! versions, one `<fingerprint>.pem` per leaf, are read as well).
//!
//! Both the leaves of completed handshakes and those the verifier refused
//! are kept: a lab wants to know which of its devices a configuration
//! refuses. The verifier leaves a refused leaf in a thread-local slot
//! ([`note_refused_leaf`]), like the refusal itself (see `refusal`), and
//! the handshake's failure takes it.
//!
//! Contract: a known fingerprint costs one hash and one set lookup; a new
//! one is handed to the folder's writer thread ([`super::seen_writer`]),
//! which appends it in a batch and syncs, 0644 in a 0700 folder
//! (certificates are
//! public; who connected is not). At most [`MAX_SEEN_CERTIFICATES`] leaves
//! (refused leaves, which anyone can send: see [`MAX_REFUSED_KEPT`]);
//! beyond that nothing more is written. A failure to write is logged once
//! and never fails a connection. It decides no trust.

use std::cell::RefCell;
use std::collections::HashSet;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use base64::Engine;
use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use super::seen_writer::{self, Job};

/// The folder under `data_dir`.
pub const SEEN_DIR: &str = "seen-certificates";

/// No more leaves than this (a few KB each, and the set of fingerprints
/// ~ 3 MB of memory).
pub const MAX_SEEN_CERTIFICATES: usize = 100_000;

/// Refused leaves come from anyone who can reach the port, unsigned by
/// any CA: at most this many are kept per process run...
pub const MAX_REFUSED_KEPT: usize = 10_000;

/// ...each at most this long and parsing as X.509 (device certificates
/// are 0.5-3 KB): ~110 MB of PEM at worst per run, not 100,000 × 64 KB.
pub const MAX_REFUSED_LEAF_BYTES: usize = 8 * 1024;

thread_local! {
    /// The leaf the verifier last refused on this thread.
    static REFUSED_LEAF: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Called by the client verifier when it refuses `leaf`.
pub fn note_refused_leaf(leaf: &[u8]) {
    REFUSED_LEAF.with(|slot| *slot.borrow_mut() = Some(leaf.to_vec()));
}

/// Takes the leaf the verifier refused on this thread, if any.
pub fn take_refused_leaf() -> Option<Vec<u8>> {
    REFUSED_LEAF.with(|slot| slot.borrow_mut().take())
}

/// The seen-certificates folder of one broker process, shared by its
/// listeners.
#[derive(Debug)]
pub struct SeenCertificates {
    dir: PathBuf,
    /// Fingerprints already on disk or being written: the hot path's only
    /// check. Never held across an await.
    known: Mutex<HashSet<Key>>,
    limit: usize,
    /// Refused leaves admitted since start (see [`MAX_REFUSED_KEPT`]).
    refused_kept: AtomicUsize,
    /// So a full folder or a failing disk is logged once, not per device.
    full_logged: AtomicBool,
    failure_logged: Arc<AtomicBool>,
    /// The writer thread's queue (None: it could not start, which was
    /// logged; nothing is kept).
    queue: Option<SyncSender<Job>>,
}

impl SeenCertificates {
    /// Opens (creating, 0700) `<data_dir>/seen-certificates` and reads the
    /// fingerprints already there (the bundle's certificates, and the names
    /// of the one-file-per-leaf folders of earlier versions). A folder that cannot be made is logged;
    /// the broker runs on without keeping certificates.
    pub fn open(data_dir: &Path) -> Arc<SeenCertificates> {
        SeenCertificates::open_with_limit(&data_dir.join(SEEN_DIR), MAX_SEEN_CERTIFICATES)
    }

    /// [`SeenCertificates::open`] on `dir` itself, with `limit` files.
    pub fn open_with_limit(dir: &Path, limit: usize) -> Arc<SeenCertificates> {
        let failure_logged = Arc::new(AtomicBool::new(false));
        let queue = match seen_writer::spawn(dir.to_path_buf(), Arc::clone(&failure_logged)) {
            Ok(queue) => Some(queue),
            Err(error) => {
                log_failure(&failure_logged, dir, &error);
                None
            }
        };
        let store = SeenCertificates {
            dir: dir.to_path_buf(),
            known: Mutex::new(HashSet::new()),
            limit,
            refused_kept: AtomicUsize::new(0),
            full_logged: AtomicBool::new(false),
            failure_logged,
            queue,
        };
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)));
        match made.and_then(|()| std::fs::read_dir(dir)) {
            Ok(entries) => {
                let mut known = store.known.lock();
                for entry in entries.flatten() {
                    if let Some(fingerprint) = entry
                        .file_name()
                        .to_str()
                        .and_then(|name| name.strip_suffix(".pem"))
                        .and_then(parse_hex)
                    {
                        known.insert(key(&fingerprint));
                    }
                }
            }
            Err(error) => log_failure(&store.failure_logged, dir, &error),
        }
        let bundle = dir.join(seen_writer::BUNDLE);
        match seen_writer::repair_torn_tail(&bundle) {
            Ok(text) => {
                let mut known = store.known.lock();
                for der in CertificateDer::pem_slice_iter(&text).flatten() {
                    known.insert(key(&Sha256::digest(der.as_ref()).into()));
                }
            }
            Err(error) => log_failure(&store.failure_logged, &bundle, &error),
        }
        Arc::new(store)
    }

    /// Keeps `leaf` unless its fingerprint is known: the writer thread
    /// writes it. Never blocks: with the writer's queue full, the leaf is
    /// forgotten and kept on a later connect.
    pub fn record(&self, leaf: &[u8]) {
        let Some(fingerprint) = self.admit(leaf) else {
            return;
        };
        let queued = self
            .queue
            .as_ref()
            .is_some_and(|queue| queue.try_send((fingerprint, leaf.to_vec())).is_ok());
        if !queued {
            self.known.lock().remove(&key(&fingerprint));
        }
    }

    /// Keeps a leaf the verifier refused, within the bounds on what
    /// strangers can make the broker write.
    pub fn record_refused(&self, leaf: &[u8]) {
        if self.refused_admissible(leaf) {
            self.record(leaf);
        }
    }

    fn refused_admissible(&self, leaf: &[u8]) -> bool {
        leaf.len() <= MAX_REFUSED_LEAF_BYTES
            && x509_parser::parse_x509_certificate(leaf).is_ok()
            && self
                .refused_kept
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |kept| {
                    (kept < MAX_REFUSED_KEPT).then_some(kept + 1)
                })
                .is_ok()
    }

    /// The fingerprint to write, when `leaf` is new and there is room; it
    /// counts as known from here on (one attempt per fingerprint).
    fn admit(&self, leaf: &[u8]) -> Option<[u8; 32]> {
        let fingerprint: [u8; 32] = Sha256::digest(leaf).into();
        let mut known = self.known.lock();
        if known.contains(&key(&fingerprint)) {
            return None;
        }
        if known.len() >= self.limit {
            drop(known);
            if !self.full_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "{} holds {} certificates, the most kept; new client certificates are no longer kept. Move the folder away (or audit and empty it) to keep new ones.",
                    self.dir.display(),
                    self.limit
                );
            }
            return None;
        }
        known.insert(key(&fingerprint));
        Some(fingerprint)
    }

    /// Writes synchronously (tests, and callers outside a runtime).
    pub fn record_blocking(&self, leaf: &[u8]) {
        if let Some(fingerprint) = self.admit(leaf) {
            if let Err((path, error)) =
                seen_writer::write_batch(&self.dir, &[(fingerprint, leaf.to_vec())])
            {
                log_failure(&self.failure_logged, &path, &error);
            }
        }
    }
}

/// What the set of known leaves keeps of a fingerprint: its first 128
/// bits. Half the memory per device (a fleet's every certificate is in the
/// set); two leaves sharing them would only mean the second is not kept
/// for the audit, and finding such a pair takes 2^64 certificates.
type Key = [u8; 16];

fn key(fingerprint: &[u8; 32]) -> Key {
    let mut key = [0; 16];
    key.copy_from_slice(&fingerprint[..16]);
    key
}

/// Logs the first failure to keep a certificate (`logged` remembers it).
pub(super) fn log_failure(logged: &AtomicBool, path: &Path, error: &std::io::Error) {
    if !logged.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "Cannot keep client certificates in {}: {error}. Connections are not affected; check the data_dir's owner and free space (further failures are not logged).",
            path.display()
        );
    }
}

pub(super) fn pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    fn leaf(name: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Every certificate in the folder's PEM files.
    fn kept(dir: &Path) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        for name in files(dir) {
            let text = std::fs::read(dir.join(name)).unwrap();
            for der in CertificateDer::pem_slice_iter(&text).flatten() {
                all.push(der.as_ref().to_vec());
            }
        }
        all
    }

    #[test]
    fn keeps_each_leaf_once_in_the_bundle_and_stops_at_the_limit() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data").join(SEEN_DIR);
        let store = SeenCertificates::open_with_limit(&dir, 2);
        let (a, b, c) = (leaf("a"), leaf("b"), leaf("c"));
        store.record_blocking(&a);
        store.record_blocking(&a);
        store.record_blocking(&b);
        store.record_blocking(&c);
        assert_eq!(files(&dir), vec![seen_writer::BUNDLE.to_string()]);
        assert_eq!(kept(&dir), vec![a.clone(), b.clone()]);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(seen_writer::BUNDLE)), 0o644);

        // A restart knows what the bundle holds (no second copy) and counts it.
        drop(store);
        let reopened = SeenCertificates::open_with_limit(&dir, 3);
        reopened.record_blocking(&a);
        reopened.record_blocking(&c);
        reopened.record_blocking(&leaf("d"));
        assert_eq!(kept(&dir), vec![a, b, c]);
    }

    #[test]
    fn a_folder_of_an_earlier_version_is_read_by_file_name() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join(SEEN_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        let a = leaf("a");
        std::fs::write(
            dir.join(format!("{}.pem", hex(&Sha256::digest(&a)))),
            "kept",
        )
        .unwrap();
        let store = SeenCertificates::open_with_limit(&dir, 10);
        store.record_blocking(&a);
        assert!(!dir.join(seen_writer::BUNDLE).exists());
        store.record_blocking(&leaf("b"));
        assert_eq!(kept(&dir).len(), 1);
    }

    #[test]
    fn a_torn_last_certificate_is_cut_off_when_the_folder_opens() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join(SEEN_DIR);
        let (a, b) = (leaf("a"), leaf("b"));
        SeenCertificates::open_with_limit(&dir, 10).record_blocking(&a);
        // A crash in the middle of the next append.
        let bundle = dir.join(seen_writer::BUNDLE);
        let whole = std::fs::read(&bundle).unwrap();
        let torn = pem(&b);
        let mut text = whole.clone();
        text.extend_from_slice(&torn.as_bytes()[..torn.len() / 2]);
        std::fs::write(&bundle, &text).unwrap();
        let store = SeenCertificates::open_with_limit(&dir, 10);
        assert_eq!(std::fs::read(&bundle).unwrap(), whole);
        // b was never kept: it is now, and the bundle reads whole.
        store.record_blocking(&b);
        assert_eq!(kept(&dir), vec![a, b]);
    }

    /// The writer thread keeps a burst of new leaves (a fleet's first
    /// connects), each whole, in batches.
    #[test]
    fn the_writer_keeps_a_burst_of_new_leaves() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join(SEEN_DIR);
        let store = SeenCertificates::open_with_limit(&dir, 1000);
        let leaves: Vec<Vec<u8>> = (0..300).map(|i| leaf(&format!("d{i}"))).collect();
        for leaf in &leaves {
            store.record(leaf);
            store.record(leaf);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while kept(&dir).len() < leaves.len() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut all = kept(&dir);
        assert_eq!(all.len(), leaves.len());
        let mut expected = leaves.clone();
        all.sort();
        expected.sort();
        assert_eq!(all, expected, "each leaf once, whole");
    }

    #[test]
    fn an_unwritable_folder_is_no_error() {
        let temp = tempfile::tempdir().unwrap();
        let blocker = temp.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let store = SeenCertificates::open_with_limit(&blocker.join(SEEN_DIR), 10);
        store.record_blocking(&leaf("a"));
    }

    #[test]
    fn refused_leaves_must_parse_and_be_small() {
        let temp = tempfile::tempdir().unwrap();
        let store = SeenCertificates::open_with_limit(&temp.path().join(SEEN_DIR), 10);
        assert!(!store.refused_admissible(b"not a certificate"));
        assert!(!store.refused_admissible(&vec![0x30; MAX_REFUSED_LEAF_BYTES + 1]));
        assert!(store.refused_admissible(&leaf("a")));
    }

    #[test]
    fn the_refused_leaf_slot_is_taken_once() {
        note_refused_leaf(b"leaf");
        assert_eq!(take_refused_leaf().as_deref(), Some(&b"leaf"[..]));
        assert_eq!(take_refused_leaf(), None);
    }
}
