//! Checks of the `[provision]` table and of listeners' `provision` flag
//! that serde cannot express. Pure: it reads no file.

use super::model::Config;
use super::validate::ValidationError;

/// Pushes every problem of the provisioning settings onto `errors`.
pub(super) fn validate_provision(config: &Config, errors: &mut Vec<ValidationError>) {
    let provision = &config.provision;
    for (index, listener) in config.listeners.iter().enumerate() {
        if !listener.provision {
            continue;
        }
        let key = format!("listener[{index}].provision");
        if !provision.enabled {
            errors.push(ValidationError::new(
                key.clone(),
                "the provisioning service is off (set `[provision] enabled = true`, or remove \
                 `provision = true` from this listener)",
            ));
        }
        if listener.mount_point.is_some() {
            errors.push(ValidationError::new(
                key.clone(),
                "provisioning topics are broker topics and are never mounted (serve \
                 provisioning on a listener without `mount_point`)",
            ));
        }
        if listener.tls.is_none() {
            errors.push(ValidationError::new(
                key,
                "provisioning needs TLS with client certificates: a claim certificate is what \
                 lets a device ask (add a [listener.tls] table)",
            ));
        }
    }
    if !provision.enabled {
        return;
    }
    if provision.claim_group.trim().is_empty() {
        errors.push(ValidationError::new(
            "provision.claim_group",
            "is empty, so no certificate could be told to be a claim certificate \
             (use the default \"fleetmq-claim\")",
        ));
    }
    if provision.id_pattern.is_empty() {
        errors.push(ValidationError::new(
            "provision.id_pattern",
            "is empty and would match no device (write \"*\" to accept any id)",
        ));
    }
    if provision.validity_secs < 60 || provision.validity_secs > 36_500 * 86_400 {
        errors.push(ValidationError::new(
            "provision.validity_secs",
            "must be between 60 seconds and 100 years",
        ));
    }
    if provision.renew_before_secs >= provision.validity_secs {
        errors.push(ValidationError::new(
            "provision.renew_before_secs",
            "is not shorter than validity_secs, so every new certificate would be due for \
             renewal at once (make it a fraction of validity_secs)",
        ));
    }
    use super::provision::ProvisionPolicy;
    match provision.policy {
        ProvisionPolicy::AllowList if provision.allow_list.is_none() => {
            errors.push(ValidationError::new(
                "provision.allow_list",
                "policy \"allow-list\" needs the file of allowed device ids",
            ));
        }
        ProvisionPolicy::Token if provision.tokens_file.is_none() => {
            errors.push(ValidationError::new(
                "provision.tokens_file",
                "policy \"token\" needs the file of one-time tokens",
            ));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::config::{ListenerConfig, ProvisionPolicy, TlsConfig};

    fn keys(config: &Config) -> Vec<String> {
        let mut errors = Vec::new();
        validate_provision(config, &mut errors);
        errors.into_iter().map(|error| error.key).collect()
    }

    #[test]
    fn a_provisioning_listener_needs_the_service_tls_and_no_mount_point() {
        let mut config = Config {
            listeners: vec![ListenerConfig {
                provision: true,
                mount_point: Some("lab/".into()),
                ..ListenerConfig::default()
            }],
            ..Config::default()
        };
        assert_eq!(
            keys(&config),
            [
                "listener[0].provision",
                "listener[0].provision",
                "listener[0].provision"
            ]
        );
        config.provision.enabled = true;
        config.listeners[0].mount_point = None;
        config.listeners[0].tls = Some(TlsConfig::default());
        assert!(keys(&config).is_empty(), "{:?}", keys(&config));
    }

    #[test]
    fn policies_need_their_files_and_windows_must_fit() {
        let mut config = Config::default();
        config.provision.enabled = true;
        config.provision.policy = ProvisionPolicy::Token;
        config.provision.renew_before_secs = config.provision.validity_secs;
        assert_eq!(
            keys(&config),
            ["provision.renew_before_secs", "provision.tokens_file"]
        );
        config.provision.policy = ProvisionPolicy::AllowList;
        config.provision.renew_before_secs = 1;
        assert_eq!(keys(&config), ["provision.allow_list"]);
    }
}
