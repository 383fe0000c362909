//! Dashboard login sessions, kept on the server: the cookie holds a random
//! 256-bit id (never derived from the token), which expires after
//! [`IDLE_LIFETIME`] without use or [`ABSOLUTE_LIFETIME`] after the login,
//! and which logout revokes. A restart logs everyone out.
//!
//! It owns the table of sessions and nothing else; the token check and the
//! cookie's attributes are [`super::auth`]'s.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use parking_lot::Mutex;

/// A session unused for this long ends.
pub(super) const IDLE_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// A session ends this long after its login, used or not.
pub(super) const ABSOLUTE_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Sessions kept at most; the oldest goes when a login would pass it, so
/// repeated logins cannot grow memory without bound.
const MAX_SESSIONS: usize = 1024;

/// One login.
#[derive(Debug, Clone, Copy)]
struct Session {
    created: Instant,
    last_used: Instant,
}

/// The live sessions, by id.
#[derive(Debug)]
pub(super) struct Sessions {
    idle: Duration,
    absolute: Duration,
    table: Mutex<HashMap<String, Session>>,
    rng: SystemRandom,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::with_lifetimes(IDLE_LIFETIME, ABSOLUTE_LIFETIME)
    }
}

impl Sessions {
    pub fn with_lifetimes(idle: Duration, absolute: Duration) -> Sessions {
        Sessions {
            idle,
            absolute,
            table: Mutex::new(HashMap::new()),
            rng: SystemRandom::new(),
        }
    }

    /// A new session's id (64 hex digits), or None when the system's random
    /// source fails (the login is then refused).
    pub fn create(&self, now: Instant) -> Option<String> {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut table = self.table.lock();
        table.retain(|_, session| self.is_live(session, now));
        if table.len() >= MAX_SESSIONS {
            let oldest = table
                .iter()
                .min_by_key(|(_, session)| session.created)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                table.remove(&oldest);
            }
        }
        table.insert(
            id.clone(),
            Session {
                created: now,
                last_used: now,
            },
        );
        Some(id)
    }

    /// Whether `id` is a live session; using it counts as activity.
    pub fn touch(&self, id: &str, now: Instant) -> bool {
        let mut table = self.table.lock();
        let live = table
            .get(id)
            .is_some_and(|session| self.is_live(session, now));
        match table.get_mut(id) {
            Some(session) if live => session.last_used = now,
            Some(_) => {
                table.remove(id);
            }
            None => {}
        }
        live
    }

    /// Ends the session `id` (logout).
    pub fn revoke(&self, id: &str) {
        self.table.lock().remove(id);
    }

    fn is_live(&self, session: &Session, now: Instant) -> bool {
        now.saturating_duration_since(session.last_used) < self.idle
            && now.saturating_duration_since(session.created) < self.absolute
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn ids_are_random_and_revocable() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let a = sessions.create(now).unwrap();
        let b = sessions.create(now).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(sessions.touch(&a, now) && sessions.touch(&b, now));
        sessions.revoke(&a);
        assert!(!sessions.touch(&a, now));
        assert!(sessions.touch(&b, now));
        assert!(!sessions.touch("not-a-session", now));
    }

    #[test]
    fn sessions_expire_when_idle_and_at_their_absolute_limit() {
        let sessions = Sessions::with_lifetimes(10 * MINUTE, 30 * MINUTE);
        let start = Instant::now();
        let idle = sessions.create(start).unwrap();
        let busy = sessions.create(start).unwrap();
        for minute in [5, 10, 15, 20, 25] {
            assert!(sessions.touch(&busy, start + minute * MINUTE), "{minute}");
        }
        assert!(!sessions.touch(&idle, start + 11 * MINUTE));
        assert!(!sessions.touch(&busy, start + 30 * MINUTE));
    }

    #[test]
    fn the_table_is_bounded() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let first = sessions.create(start).unwrap();
        for index in 1..=MAX_SESSIONS {
            sessions.create(start + Duration::from_millis(index as u64));
        }
        assert_eq!(sessions.table.lock().len(), MAX_SESSIONS);
        assert!(!sessions.touch(&first, start + MINUTE));
    }
}
