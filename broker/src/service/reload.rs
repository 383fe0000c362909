//! What a SIGHUP can change: the configuration is read again and compared
//! with the running one, setting by setting.
//!
//! Today only the *contents* of TLS files (certificates, keys, CAs, CRLs at
//! the same paths) are applied live, by [`crate::server::Running::reload_tls`].
//! Every changed setting is logged with "needs a restart", so an operator
//! who edited `fleetmq.toml` and sent SIGHUP learns what did not take
//! effect. When more settings become live, [`applies_live`] says so and the
//! reload applies them.

use fleetmq_core::config::Config;

/// One setting that differs between the running and the re-read
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Dotted path as written in TOML, `listener[0].bind`, `limits.max_inflight`.
    pub key: String,
    /// The running value, in TOML syntax; `(unset)` when absent.
    pub old: String,
    /// The new value, in TOML syntax; `(unset)` when absent.
    pub new: String,
}

impl Change {
    /// Whether the running broker picks this change up without a restart.
    pub fn applies_live(&self) -> bool {
        applies_live(&self.key)
    }
}

/// Settings a reload applies: the password file and the ACL rules (the
/// `[auth]` section and `[[acl]]` tables), which take effect for existing
/// sessions too. TLS file contents are re-read on every SIGHUP, but a
/// changed TLS *path* or policy is a new listener.
pub fn applies_live(key: &str) -> bool {
    key.starts_with("auth.")
        || key == "auth"
        || key == "acl"
        || key.starts_with("acl[")
        || key.starts_with("acl.")
}

/// Copies into `in_force` the settings a successful reload applied (those
/// [`applies_live`] names: `[auth]` and `[[acl]]`), so that the next
/// reload compares with what runs, not with the start-up file. Settings
/// that need a restart keep their start-up values: they are still what
/// runs, and a reload that keeps asking for them says so again.
pub fn record_applied(in_force: &mut Config, reread: &Config) {
    in_force.auth = reread.auth.clone();
    in_force.acl = reread.acl.clone();
}

/// Every setting that differs between `running` and `reread`, in file order.
pub fn changes(running: &Config, reread: &Config) -> Vec<Change> {
    let mut found = Vec::new();
    match (
        toml::Value::try_from(running),
        toml::Value::try_from(reread),
    ) {
        (Ok(old), Ok(new)) => compare("", Some(&old), Some(&new), &mut found),
        // Cannot happen for a Config (every field serializes); report the
        // whole configuration as changed rather than nothing.
        _ => found.push(Change {
            key: "(configuration)".into(),
            old: "(running)".into(),
            new: "(re-read)".into(),
        }),
    }
    found
}

fn compare(
    key: &str,
    old: Option<&toml::Value>,
    new: Option<&toml::Value>,
    found: &mut Vec<Change>,
) {
    use toml::Value;
    match (old, new) {
        (Some(Value::Table(old)), Some(Value::Table(new))) => {
            for (name, value) in old {
                compare(&join(key, name), Some(value), new.get(name), found);
            }
            for (name, value) in new {
                if !old.contains_key(name) {
                    compare(&join(key, name), None, Some(value), found);
                }
            }
        }
        // Arrays of tables (listeners, ACL rules) are compared entry by
        // entry so that a changed bind names its listener.
        (Some(Value::Array(old)), Some(Value::Array(new)))
            if old.iter().chain(new).all(Value::is_table) =>
        {
            for index in 0..old.len().max(new.len()) {
                compare(
                    &format!("{key}[{index}]"),
                    old.get(index),
                    new.get(index),
                    found,
                );
            }
        }
        // A secret (a bridge's remote_password) is named, never shown.
        (old, new) if old != new && key.ends_with("password") => found.push(Change {
            key: key.to_string(),
            old: old.map_or("(unset)", |_| "(hidden)").to_string(),
            new: new.map_or("(unset)", |_| "(hidden)").to_string(),
        }),
        (old, new) if old != new => found.push(Change {
            key: key.to_string(),
            old: render(old),
            new: render(new),
        }),
        _ => {}
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn render(value: Option<&toml::Value>) -> String {
    match value {
        None => "(unset)".to_string(),
        Some(toml::Value::Table(table)) => {
            // An inline rendering of a whole listener would be long; its
            // keys are what matters.
            let keys: Vec<&str> = table.keys().map(String::as_str).collect();
            format!("{{ {} }}", keys.join(", "))
        }
        Some(value) => value.to_string(),
    }
}

/// Logs each change, and whether it took effect; returns how many need a
/// restart.
pub fn log_changes(changes: &[Change]) -> usize {
    let mut restart = 0;
    for change in changes {
        if change.applies_live() {
            tracing::info!(
                key = %change.key,
                "Configuration: {} changed from {} to {}, applied.",
                change.key, change.old, change.new
            );
        } else {
            restart += 1;
            tracing::warn!(
                key = %change.key,
                "Configuration: {} changed from {} to {}; this needs a restart \
                 (systemctl restart fleetmq) to take effect.",
                change.key, change.old, change.new
            );
        }
    }
    if changes.is_empty() {
        tracing::info!("Configuration unchanged.");
    }
    restart
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use fleetmq_core::config::ListenerConfig;

    #[test]
    fn a_changed_bridge_needs_a_restart_and_its_password_is_not_shown() {
        let running = Config::default();
        let mut reread = Config::default();
        reread.bridges.push(fleetmq_core::config::BridgeConfig {
            name: "b".into(),
            remote_password: Some("s3cret".into()),
            ..Default::default()
        });
        let mut changed = running.clone();
        changed.bridges = reread.bridges.clone();
        assert!(changes(&running, &reread).iter().all(|c| !c.applies_live()));
        changed.bridges[0].remote_password = Some("other".into());
        let found = changes(&reread, &changed);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key, "bridge[0].remote_password");
        assert_eq!(
            (found[0].old.as_str(), found[0].new.as_str()),
            ("(hidden)", "(hidden)")
        );
    }

    #[test]
    fn identical_configurations_have_no_changes() {
        assert!(changes(&Config::default(), &Config::default()).is_empty());
    }

    #[test]
    fn changed_bind_and_limit_are_named_with_old_and_new_values() {
        let old = Config::default();
        let mut new = Config::default();
        new.listeners[0].bind = "127.0.0.1:1884".into();
        new.limits.max_inflight = 5;
        let found = changes(&old, &new);
        assert_eq!(
            found,
            vec![
                Change {
                    key: "listener[0].bind".into(),
                    old: "\"127.0.0.1:1883\"".into(),
                    new: "\"127.0.0.1:1884\"".into(),
                },
                Change {
                    key: "limits.max_inflight".into(),
                    old: "20".into(),
                    new: "5".into(),
                },
            ]
        );
        assert!(found.iter().all(|change| !change.applies_live()));
    }

    #[test]
    fn applied_settings_become_the_ones_in_force_and_restart_ones_stay() {
        let start = Config::default();
        let mut reread = Config::default();
        reread.auth.password_file = Some("/etc/fleetmq/passwd".into());
        reread.limits.max_inflight = 5;
        let mut in_force = start.clone();
        record_applied(&mut in_force, &reread);
        let keys: Vec<String> = changes(&in_force, &reread)
            .into_iter()
            .map(|c| c.key)
            .collect();
        assert_eq!(keys, vec!["limits.max_inflight"]);
        // Back to the start-up file: the password file change is reported.
        let keys: Vec<String> = changes(&in_force, &start)
            .into_iter()
            .map(|c| c.key)
            .collect();
        assert_eq!(keys, vec!["auth.password_file"]);
    }

    #[test]
    fn added_listener_and_tls_path_are_changes() {
        let old = Config::default();
        let mut new = Config::default();
        if let Some(tls) = new.listeners[1].tls.as_mut() {
            tls.cert = Some("/etc/fleetmq/server.crt".into());
        }
        new.listeners.push(ListenerConfig {
            bind: "127.0.0.1:1885".into(),
            ..ListenerConfig::default()
        });
        let keys: Vec<String> = changes(&old, &new).into_iter().map(|c| c.key).collect();
        assert_eq!(keys, vec!["listener[1].tls.cert", "listener[2]"]);
    }
}
