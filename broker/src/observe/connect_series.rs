//! The series one connect event updates, looked up once per label set.
//!
//! A connect touches up to 11 labelled series (connects, certificate
//! version, handshake time, seven handshake parts, CONNECT to CONNACK).
//! `with_label_values` hashes every label value and takes the vector's
//! lock each time; a fleet connects with a handful of label sets, so the
//! resolved series are kept here per set and reused (issue 22: the lookups
//! were ~0.5% of a mutual-TLS connect on the broker's core).
//!
//! It owns that table only: which series exist and what they mean is
//! [`super::metrics`]'s. A series is resolved when first observed, never
//! before, so `/metrics` shows exactly the series it showed without the
//! table. The table is bounded: past [`MAX_LABEL_SETS`] sets it starts
//! over (the series themselves stay in the registry).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};

use fleetmq_core::peer::AuthMode;

/// Label sets kept at most (listeners × auth × resumed × TLS version ×
/// key type: a lab has a few dozen).
pub const MAX_LABEL_SETS: usize = 256;

/// The handshake parts, in the order of [`ConnectSeries::part`]'s index.
pub const PARTS: [&str; 7] = [
    "broker_flight",
    "client_wait",
    "network_rtt",
    "device",
    "broker_verify",
    "broker_queue",
    "broker_scheduling",
];

/// What the series of a connect are labelled by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectLabels {
    pub listener: Arc<str>,
    pub auth: AuthMode,
    pub resumed: bool,
    /// The TLS version (empty without TLS).
    pub version: Cow<'static, str>,
    /// The client certificate's key type (`none` without one).
    pub key_type: Cow<'static, str>,
}

impl ConnectLabels {
    fn resumed(&self) -> &'static str {
        if self.resumed {
            "true"
        } else {
            "false"
        }
    }
}

/// The vectors the series come from.
pub struct ConnectVecs<'a> {
    pub connects: &'a IntCounterVec,
    pub client_cert_versions: &'a IntCounterVec,
    pub tls_handshake: &'a HistogramVec,
    pub tls_parts: &'a HistogramVec,
    pub connect_to_connack: &'a HistogramVec,
}

/// The series of one label set, each resolved on first use.
#[derive(Default)]
pub struct ConnectSeries {
    connects: Option<IntCounter>,
    /// X.509 v1, v3.
    cert_versions: [Option<IntCounter>; 2],
    handshake: Option<Histogram>,
    parts: [Option<Histogram>; PARTS.len()],
    connack: Option<Histogram>,
}

impl ConnectSeries {
    pub fn connects(&mut self, vecs: &ConnectVecs<'_>, labels: &ConnectLabels) -> &IntCounter {
        self.connects.get_or_insert_with(|| {
            vecs.connects
                .with_label_values(&[&*labels.listener, labels.auth.as_str()])
        })
    }

    /// The counter of certificates of X.509 `version` (1, else 3).
    pub fn cert_version(
        &mut self,
        vecs: &ConnectVecs<'_>,
        labels: &ConnectLabels,
        version: u32,
    ) -> &IntCounter {
        let (slot, name) = if version == 1 {
            (&mut self.cert_versions[0], "v1")
        } else {
            (&mut self.cert_versions[1], "v3")
        };
        slot.get_or_insert_with(|| {
            vecs.client_cert_versions
                .with_label_values(&[&*labels.listener, name])
        })
    }

    pub fn handshake(&mut self, vecs: &ConnectVecs<'_>, labels: &ConnectLabels) -> &Histogram {
        self.handshake.get_or_insert_with(|| {
            vecs.tls_handshake.with_label_values(&[
                &*labels.listener,
                labels.auth.as_str(),
                labels.resumed(),
            ])
        })
    }

    /// The histogram of part `PARTS[index]` (None: no such part).
    pub fn part(
        &mut self,
        vecs: &ConnectVecs<'_>,
        labels: &ConnectLabels,
        index: usize,
    ) -> Option<&Histogram> {
        let name = PARTS.get(index)?;
        let slot = self.parts.get_mut(index)?;
        Some(slot.get_or_insert_with(|| {
            vecs.tls_parts.with_label_values(&[
                &*labels.listener,
                labels.auth.as_str(),
                labels.resumed(),
                &labels.version,
                &labels.key_type,
                name,
            ])
        }))
    }

    pub fn connack(&mut self, vecs: &ConnectVecs<'_>, labels: &ConnectLabels) -> &Histogram {
        self.connack.get_or_insert_with(|| {
            vecs.connect_to_connack
                .with_label_values(&[&*labels.listener, labels.auth.as_str()])
        })
    }
}

/// Resolved series per label set, bounded by [`MAX_LABEL_SETS`].
#[derive(Default)]
pub struct ConnectTable {
    sets: HashMap<ConnectLabels, ConnectSeries>,
}

impl ConnectTable {
    /// The series of `labels`, made empty when first seen. (The key is
    /// cloned for the lookup: reference counts and static strings.)
    pub fn series(&mut self, labels: &ConnectLabels) -> &mut ConnectSeries {
        if self.sets.len() >= MAX_LABEL_SETS && !self.sets.contains_key(labels) {
            self.sets.clear();
        }
        self.sets.entry(labels.clone()).or_default()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sets.len()
    }
}
