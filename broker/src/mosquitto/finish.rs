//! Finishing a translation: `log_type` lines become one level, the
//! listeners are built (with Mosquitto's defaults for anonymous clients
//! and persistence written out), per-listener auth files are merged into
//! fleetmq's global ones, and the result is validated with every error
//! placed at the Mosquitto line behind it.

use std::path::PathBuf;
use std::sync::Arc;

use super::listener::{self, source};
use super::parse::Line;
use super::translate::Translator;
use super::{MosquittoError, Note, Source, Translation};
use fleetmq_core::config;

impl Translator {
    /// `log_type` lines become one level: the most verbose asked for.
    fn log_level(&mut self) {
        let mut level: Option<(u8, &str)> = None;
        let types = std::mem::take(&mut self.log_types);
        for (kind, line) in &types {
            let this = match kind.as_str() {
                "none" => (0, "off"),
                "error" => (1, "error"),
                "warning" => (2, "warn"),
                "notice" | "information" => (3, "info"),
                "subscribe" | "unsubscribe" | "websockets" => {
                    self.note(line, format!("fleetmq filters logs by level, not by message type: {kind} messages have no switch of their own"));
                    (3, "info")
                }
                "debug" | "all" => (4, "debug"),
                other => {
                    self.problems.push(line.note(format!("{other:?} is not a log type (error, warning, notice, information, debug, all, none)")));
                    continue;
                }
            };
            if level.is_none_or(|(rank, _)| this.0 > rank) {
                level = Some(this);
            }
            self.record("log.level", line);
        }
        if let Some((_, name)) = level {
            self.config.log.level = name.to_string();
        }
    }

    pub(super) fn finish(mut self, main_file: &str) -> Result<Translation, MosquittoError> {
        self.log_level();
        let main: Arc<str> = Arc::from(main_file);
        if self.config.store.enabled
            && self.persistence_set
            && self.config.store.import_mosquitto_db.is_none()
        {
            // Mosquitto loads persistence_location/mosquitto.db by default.
            self.config.store.import_mosquitto_db = Some(PathBuf::from("mosquitto.db"));
            self.provenance
                .entry("store.import_mosquitto_db".into())
                .or_default()
                .push(Source::Default(
                    "Mosquitto default: persistence_file mosquitto.db (imported at the first start)"
                        .into(),
                ));
        }
        if !self.persistence_set {
            self.config.store.enabled = false;
            self.provenance
                .entry("store.enabled".into())
                .or_default()
                .push(Source::Default(
                    "Mosquitto default: persistence false (no persistence line)".into(),
                ));
        }
        super::defaults::apply(&mut self.config, &mut self.provenance);
        let explicit = self
            .listeners
            .iter()
            .any(|l| l.line.is_some() || l.left_out.is_some());
        let local_only = !explicit && !self.default_listener.used;
        let (anonymous, anonymous_source) = match (&self.allow_anonymous, local_only) {
            (Some((allowed, line)), _) => (*allowed, source(line)),
            (None, true) => (true, Source::Default("Mosquitto 2.0 default without listeners: local only, anonymous allowed".into())),
            (None, false) => (false, Source::Default("Mosquitto 2.0 default: allow_anonymous false (a verified client certificate is not anonymous in fleetmq)".into())),
        };
        let mut drafts = Vec::new();
        let default_listener = std::mem::take(&mut self.default_listener);
        if local_only {
            let mut local = default_listener;
            local.address = Some("127.0.0.1".into());
            local
                .provenance
                .entry("bind")
                .or_default()
                .push(Source::Default(
                    "Mosquitto 2.0 default without listeners: port 1883 on this machine only"
                        .into(),
                ));
            drafts.push(local);
        } else if default_listener.used {
            drafts.push(default_listener);
        }
        drafts.append(&mut self.listeners);

        self.config.listeners.clear();
        let mut password_files = Vec::new();
        let mut acl_files = Vec::new();
        let mut listener_count = 0;
        for draft in drafts {
            let files = (draft.password_file.clone(), draft.acl_file.clone());
            let header = match &draft.line {
                Some(line) => Some(source(line)),
                None => draft
                    .provenance
                    .get("bind")
                    .and_then(|s| s.first())
                    .cloned(),
            };
            match listener::finish(draft, anonymous, anonymous_source.clone(), &mut self.notes) {
                Ok(Some(finished)) => {
                    let index = self.config.listeners.len();
                    let mut listener = finished.listener;
                    let port = listener.bind.rsplit(':').next().unwrap_or("0").to_string();
                    let mut name = format!("mqtt-{port}");
                    let mut suffix = 2;
                    while self.config.listeners.iter().any(|l| l.name == name) {
                        name = format!("mqtt-{port}-{suffix}");
                        suffix += 1;
                    }
                    listener.name = name;
                    if let Some(header) = header {
                        self.provenance
                            .insert(format!("listener[{index}]"), vec![header]);
                    }
                    for (key, sources) in finished.provenance {
                        self.provenance
                            .entry(format!("listener[{index}].{key}"))
                            .or_default()
                            .extend(sources);
                    }
                    self.config.listeners.push(listener);
                    password_files.push(files.0);
                    acl_files.push(files.1);
                    listener_count += 1;
                }
                Ok(None) => {}
                Err(problems) => self.problems.extend(problems.into_iter().map(|mut p| {
                    if p.file.is_empty() {
                        p.file = main.clone();
                    }
                    p
                })),
            }
        }
        let global_password = self.password_file.take();
        let global_acl = self.acl_file.take();
        self.config.auth.password_file = self.merge_auth_file(
            "auth.password_file",
            global_password,
            password_files,
            listener_count,
        );
        self.config.auth.acl_file =
            self.merge_auth_file("auth.acl_file", global_acl, acl_files, listener_count);

        if !self.problems.is_empty() {
            return Err(MosquittoError::Invalid {
                problems: self.problems,
            });
        }
        if let Err(errors) = config::validate(&self.config) {
            let problems = errors
                .into_iter()
                .map(|error| self.locate(&main, error))
                .collect();
            return Err(MosquittoError::Invalid { problems });
        }
        Ok(Translation {
            config: self.config,
            notes: self.notes,
            source: main_file.to_string(),
            provenance: self.provenance,
        })
    }

    /// One `password_file`/`acl_file` for all listeners: the global one, or
    /// the per-listener ones when they agree.
    fn merge_auth_file(
        &mut self,
        key: &str,
        global: Option<(String, Line)>,
        per_listener: Vec<Option<(String, Line)>>,
        listeners: usize,
    ) -> Option<PathBuf> {
        let chosen = global.or_else(|| per_listener.iter().flatten().next().cloned());
        let (path, line) = chosen?;
        self.record(key, &line);
        let set: Vec<&(String, Line)> = per_listener.iter().flatten().collect();
        for (other, other_line) in &set {
            if *other != path {
                self.note(other_line, format!("fleetmq has one {} for every listener; {path} (line {}) is used for all of them", line.name, line.number));
            }
        }
        if !set.is_empty() && set.len() < listeners {
            self.note(&line, "fleetmq applies this file to every listener, also those that had none in Mosquitto");
        }
        Some(PathBuf::from(path))
    }

    /// A validation error, placed at the Mosquitto line behind its key.
    fn locate(&self, main: &Arc<str>, error: config::ValidationError) -> Note {
        let mut key = error.key.as_str();
        loop {
            if let Some(Source::Line { file, line, text }) =
                self.provenance.get(key).and_then(|s| s.last())
            {
                return Note {
                    file: file.clone(),
                    line: Some(*line),
                    directive: text
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                    why: format!("becomes {}: {}", error.key, error.message),
                };
            }
            match key.rfind(['.', '[']) {
                Some(end) => key = &key[..end],
                None => break,
            }
        }
        Note {
            file: main.clone(),
            line: None,
            directive: error.key.clone(),
            why: error.message,
        }
    }
}
