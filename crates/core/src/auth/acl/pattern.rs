//! Placeholders in rule topics: `%c` client id, `%u` username, `%i`
//! identity ([`Identity::principal`]: certificate identity, else verified
//! username; none for an anonymous client), `%g` each group of the client.
//!
//! A value that is empty, missing, contains `+`, `#`, `/` or NUL, or starts
//! with `$` makes the rule not apply to that client: a client chooses its
//! client id (and, without a password file, its username), and a hostile
//! one such as `#` or `a/b` must not turn `devices/%c/#` into a rule over
//! other devices' topics, nor `%c/#` into one over `$SYS`.

use crate::auth::Identity;

/// Which placeholders a rule's topic expands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholders {
    /// None: Mosquitto `topic` lines are literal.
    None,
    /// `%c` and `%u`, as Mosquitto `pattern` lines.
    Mosquitto,
    /// `%c`, `%u`, `%i` and `%g` (`fleetmq.toml`).
    Fleetmq,
}

/// Whether `test` holds for some expansion of `topic` for this client: the
/// one expansion, or with `%g` one per group (no group, no expansion).
pub(super) fn any_expansion(
    topic: &str,
    placeholders: Placeholders,
    identity: &Identity,
    mut test: impl FnMut(&str) -> bool,
) -> bool {
    if placeholders == Placeholders::None || !topic.contains('%') {
        return test(topic);
    }
    if placeholders == Placeholders::Fleetmq && topic.contains("%g") {
        return identity.groups.iter().any(|group| {
            expand(topic, placeholders, identity, Some(group)).is_some_and(|t| test(&t))
        });
    }
    expand(topic, placeholders, identity, None).is_some_and(|t| test(&t))
}

/// `topic` with its placeholders filled in, `None` when one cannot be
/// filled safely. A `%` before any other character stays as it is.
fn expand(
    topic: &str,
    placeholders: Placeholders,
    identity: &Identity,
    group: Option<&str>,
) -> Option<String> {
    let fleetmq = placeholders == Placeholders::Fleetmq;
    let mut expanded = String::with_capacity(topic.len() + 32);
    let mut chars = topic.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            let value = match chars.peek() {
                Some('c') => Some(Some(&*identity.client_id)),
                Some('u') => Some(identity.username.as_deref()),
                Some('i') if fleetmq => Some(identity.principal()),
                Some('g') if fleetmq => Some(group),
                _ => None,
            };
            if let Some(value) = value {
                chars.next();
                let value = value.filter(|value| is_safe(value))?;
                expanded.push_str(value);
                continue;
            }
        }
        expanded.push(c);
    }
    Some(expanded)
}

fn is_safe(value: &str) -> bool {
    !value.is_empty() && !value.starts_with('$') && !value.contains(['+', '#', '/', '\0'])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn identity(client_id: &str, username: Option<&str>, cert: Option<&str>) -> Identity {
        Identity {
            client_id: client_id.into(),
            username: username.map(str::to_string),
            cert_identity: cert.map(std::sync::Arc::from),
            groups: vec!["ops".to_string(), "lab".to_string()],
            listener: "l".into(),
            fingerprint: cert.map(|_| "00".into()),
            password_verified: username.is_some(),
            username_from_certificate: false,
            bridge: false,
        }
    }

    fn all(topic: &str, placeholders: Placeholders, identity: &Identity) -> Vec<String> {
        let mut seen = Vec::new();
        any_expansion(topic, placeholders, identity, |t| {
            seen.push(t.to_string());
            false
        });
        seen
    }

    #[test]
    fn placeholders_expand() {
        let id = identity("c1", Some("u1"), Some("dev-a"));
        let fleetmq = Placeholders::Fleetmq;
        assert_eq!(all("d/%c/%u/%i", fleetmq, &id), ["d/c1/u1/dev-a"]);
        assert_eq!(all("g/%g/#", fleetmq, &id), ["g/ops/#", "g/lab/#"]);
        assert_eq!(all("100%/%x/%", fleetmq, &id), ["100%/%x/%"]);
        assert_eq!(all("x%c%c", fleetmq, &id), ["xc1c1"]);
        // Mosquitto patterns know %c and %u only; topic lines nothing.
        assert_eq!(
            all("%c/%u/%i/%g", Placeholders::Mosquitto, &id),
            ["c1/u1/%i/%g"]
        );
        assert_eq!(all("%c", Placeholders::None, &id), ["%c"]);
        // %i is the principal without a certificate.
        let anonymous = identity("c1", Some("u1"), None);
        assert_eq!(all("%i", fleetmq, &anonymous), ["u1"]);
    }

    #[test]
    fn unsafe_or_missing_values_make_the_rule_not_apply() {
        for bad in ["", "#", "+", "a/b", "a\0", "$SYS", "x+y"] {
            let id = identity(bad, Some("u"), None);
            assert!(
                all("d/%c/#", Placeholders::Fleetmq, &id).is_empty(),
                "{bad:?}"
            );
            let id = identity("c", Some(bad), None);
            assert!(
                all("d/%u", Placeholders::Mosquitto, &id).is_empty(),
                "{bad:?}"
            );
        }
        let no_username = identity("c", None, None);
        assert!(all("d/%u", Placeholders::Mosquitto, &no_username).is_empty());
        let mut no_groups = identity("c", None, None);
        no_groups.groups.clear();
        assert!(all("g/%g", Placeholders::Fleetmq, &no_groups).is_empty());
        // A literal topic never depends on the client.
        assert_eq!(all("d/x", Placeholders::Fleetmq, &no_groups), ["d/x"]);
    }
}
