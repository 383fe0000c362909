//! The dynamic-security plugin's directives: `plugin PATH` naming
//! `mosquitto_dynamic_security.so` (or `plugin_load`/`global_plugin`), and
//! its `plugin_opt_config_file FILE`, which becomes `auth.dynsec_file`
//! (decision 0138). Other plugins and their options stay unsupported
//! notes, as before.
//!
//! Owns only those directives; everything else is `translate.rs`'s.

use super::parse::Line;
use super::translate::Translator;

/// Whether `path` names Mosquitto's dynamic-security plugin.
fn is_dynsec_plugin(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|file| file.contains("dynamic_security"))
}

impl Translator {
    /// Handles `line` when it belongs to the dynamic-security plugin;
    /// `None` when it does not (the caller goes on as before).
    pub(super) fn dynsec_directive(&mut self, line: &Line) -> Option<Result<(), String>> {
        match line.name.as_str() {
            "plugin" | "global_plugin" | "plugin_load" if is_dynsec_plugin(&line.value) => {
                self.dynsec_plugin = Some(line.clone());
                Some(Ok(()))
            }
            "plugin_opt_config_file" if self.dynsec_plugin.is_some() => {
                if line.value.is_empty() {
                    return Some(Err("needs the path of dynamic-security.json".into()));
                }
                self.config.auth.dynsec_file = Some(line.value.clone().into());
                self.record("auth.dynsec_file", line);
                Some(Ok(()))
            }
            _ => None,
        }
    }

    /// After the last line: the plugin without a config file is not
    /// activated, as Mosquitto 2.0.11 warns and does.
    pub(super) fn finish_dynsec(&mut self) {
        if self.config.auth.dynsec_file.is_some() {
            return;
        }
        if let Some(line) = self.dynsec_plugin.take() {
            self.note(
                &line,
                "the dynamic security plugin has no plugin_opt_config_file, so it is not activated (as in Mosquitto)",
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::path::PathBuf;

    use crate::mosquitto::{translate_file, Translation};

    fn translate(text: &str) -> Translation {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, text).unwrap();
        translate_file(&path).unwrap()
    }

    fn notes(translation: &Translation) -> Vec<String> {
        translation
            .notes
            .iter()
            .map(|note| format!("{}: {}", note.directive, note.why))
            .collect()
    }

    #[test]
    fn the_plugin_and_its_config_file_become_auth_dynsec_file() {
        let translation = translate(
            "listener 1883\nplugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n\
             plugin_opt_config_file /var/lib/mosquitto/dynamic-security.json\n",
        );
        assert_eq!(
            translation.config.auth.dynsec_file,
            Some(PathBuf::from("/var/lib/mosquitto/dynamic-security.json"))
        );
        assert!(notes(&translation).is_empty(), "{:?}", notes(&translation));
    }

    #[test]
    fn the_plugin_without_config_file_is_noted_and_not_activated() {
        let translation =
            translate("listener 1883\nplugin /usr/lib/mosquitto_dynamic_security.so\n");
        assert_eq!(translation.config.auth.dynsec_file, None);
        let notes = notes(&translation);
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("plugin: ") && n.contains("not activated")),
            "{notes:?}"
        );
    }

    #[test]
    fn other_plugins_and_their_options_stay_unsupported() {
        let translation = translate(
            "listener 1883\nplugin /usr/lib/mosquitto_auth_by_ip.so\nplugin_opt_config_file /x.json\n",
        );
        assert_eq!(translation.config.auth.dynsec_file, None);
        let notes = notes(&translation);
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("plugin: fleetmq cannot load")),
            "{notes:?}"
        );
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("plugin_opt_config_file: ")),
            "{notes:?}"
        );
    }
}
