#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const HOUR: u64 = 60 * 60;
/// Some fixed "now" (2025-01-01), so tests control rotation.
const T0: u64 = 1_735_689_600;

fn keys_in(dir: &Path, now: u64) -> Arc<TicketKeys> {
    TicketKeys::open_at(Some(dir.join(TICKET_KEY_FILE)), now).unwrap()
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_ticket_decrypts_to_what_was_encrypted() {
    let keys = TicketKeys::open_at(None, T0).unwrap();
    let ticket = keys.encrypt(b"tls", b"session state", T0).unwrap();
    assert_eq!(keys.decrypt(b"tls", &ticket, T0).unwrap(), b"session state");
    // A fresh nonce each time: the same state never gives the same ticket.
    assert_ne!(keys.encrypt(b"tls", b"session state", T0).unwrap(), ticket);
}

#[test]
fn a_tampered_or_short_ticket_is_refused() {
    let keys = TicketKeys::open_at(None, T0).unwrap();
    let ticket = keys.encrypt(b"tls", b"session state", T0).unwrap();
    for i in 0..ticket.len() {
        let mut tampered = ticket.clone();
        tampered[i] ^= 0x01;
        assert!(keys.decrypt(b"tls", &tampered, T0).is_none(), "byte {i}");
    }
    for len in 0..ticket.len() {
        assert!(
            keys.decrypt(b"tls", &ticket[..len], T0).is_none(),
            "len {len}"
        );
    }
}

#[test]
fn a_ticket_does_not_cross_listeners() {
    let keys = TicketKeys::open_at(None, T0).unwrap();
    let ticket = keys.encrypt(b"tls-mutual", b"state", T0).unwrap();
    assert!(keys.decrypt(b"tls-one-way", &ticket, T0).is_none());
}

#[test]
fn keys_rotate_and_the_previous_key_still_decrypts() {
    let keys = TicketKeys::open_at(None, T0).unwrap();
    let old_ticket = keys.encrypt(b"tls", b"old", T0).unwrap();
    let later = T0 + 6 * HOUR + 1;
    let new_ticket = keys.encrypt(b"tls", b"new", later).unwrap();
    assert_ne!(
        old_ticket[..KEY_ID_LEN],
        new_ticket[..KEY_ID_LEN],
        "rotated"
    );
    assert_eq!(keys.decrypt(b"tls", &old_ticket, later).unwrap(), b"old");
    assert_eq!(keys.decrypt(b"tls", &new_ticket, later).unwrap(), b"new");
    // One more rotation: the first key is gone.
    let much_later = later + 6 * HOUR + 1;
    assert!(keys.decrypt(b"tls", &old_ticket, much_later).is_none());
    assert_eq!(
        keys.decrypt(b"tls", &new_ticket, much_later).unwrap(),
        b"new"
    );
}

#[test]
fn keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ticket = keys_in(dir.path(), T0)
        .encrypt(b"tls", b"state", T0)
        .unwrap();
    let reopened = keys_in(dir.path(), T0 + HOUR);
    assert_eq!(
        reopened.decrypt(b"tls", &ticket, T0 + HOUR).unwrap(),
        b"state"
    );
}

#[test]
fn a_rotation_while_stopped_keeps_the_previous_key() {
    let dir = tempfile::tempdir().unwrap();
    let ticket = keys_in(dir.path(), T0)
        .encrypt(b"tls", b"state", T0)
        .unwrap();
    let now = T0 + 7 * HOUR;
    let reopened = keys_in(dir.path(), now);
    assert_eq!(reopened.decrypt(b"tls", &ticket, now).unwrap(), b"state");
    // The rotation was written: a third start sees the same two keys.
    let again = keys_in(dir.path(), now);
    assert_eq!(again.decrypt(b"tls", &ticket, now).unwrap(), b"state");
    let text = fs::read_to_string(dir.path().join(TICKET_KEY_FILE)).unwrap();
    assert!(text.contains("\nprevious "), "{text}");
}

#[test]
fn keys_older_than_a_ticket_lifetime_are_dropped_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ticket = keys_in(dir.path(), T0)
        .encrypt(b"tls", b"state", T0)
        .unwrap();
    let now = T0 + 13 * HOUR;
    let reopened = keys_in(dir.path(), now);
    assert!(reopened.decrypt(b"tls", &ticket, now).is_none());
    assert!(reopened.keys.read().previous.is_none());
}

#[test]
fn the_key_file_is_mode_0600_and_replaced_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(TICKET_KEY_FILE);
    keys_in(dir.path(), T0);
    assert_eq!(mode_of(&file), 0o600);
    // A world-readable file (copied around by hand) is rewritten 0600 at
    // the next rotation, and no temp file is left behind.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    keys_in(dir.path(), T0 + 7 * HOUR);
    assert_eq!(mode_of(&file), 0o600);
    assert!(!file.with_extension("tmp").exists());
}

#[test]
fn a_damaged_file_means_fresh_keys_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(TICKET_KEY_FILE);
    let ticket = keys_in(dir.path(), T0)
        .encrypt(b"tls", b"state", T0)
        .unwrap();
    let good = fs::read_to_string(&file).unwrap();
    let current = good.lines().find(|l| l.starts_with("current ")).unwrap();
    let bad_hex = format!("{}z", &current[..current.len() - 1]);
    let damaged = [
        String::new(),
        "garbage".to_string(),
        good.replace("current ", "currant "),
        good.replace(current, &bad_hex),
        format!("{good}{}", good.lines().last().unwrap()),
        good[..good.len() - 3].to_string(),
    ];
    for text in damaged {
        fs::write(&file, &text).unwrap();
        let keys = keys_in(dir.path(), T0);
        assert!(keys.decrypt(b"tls", &ticket, T0).is_none(), "{text:?}");
        let fresh = keys.encrypt(b"tls", b"new", T0).unwrap();
        assert_eq!(keys.decrypt(b"tls", &fresh, T0).unwrap(), b"new");
        // The fresh keys replaced the damaged file.
        assert!(KeySet::parse(&fs::read_to_string(&file).unwrap()).is_some());
        assert_eq!(mode_of(&file), 0o600);
    }
}

#[test]
fn an_unwritable_data_dir_keeps_the_keys_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the data folder should be: nothing can be created in it.
    let blocked = dir.path().join("not-a-dir");
    fs::write(&blocked, b"").unwrap();
    let keys = TicketKeys::open(&blocked).unwrap();
    let now = unix_now();
    let ticket = keys.encrypt(b"tls", b"state", now).unwrap();
    assert_eq!(keys.decrypt(b"tls", &ticket, now).unwrap(), b"state");
}

#[test]
fn debug_output_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_in(dir.path(), T0);
    let secret = hex(&keys.keys.read().current.secret);
    let listener = keys.for_listener(Arc::from("tls"));
    assert!(!format!("{keys:?} {listener:?}").contains(&secret));
}
