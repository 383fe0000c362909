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
}
