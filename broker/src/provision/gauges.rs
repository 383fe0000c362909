//! Metrics of the certificate lifecycle (decision 0153): device
//! certificates by state and how many expire soon, requests waiting for
//! approval, and provisioning answers by outcome. The worker refreshes the
//! gauges from the PKI index once a minute and after each answer, so a
//! scrape never reads a file.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts};
use time::{Duration, OffsetDateTime};

use crate::certs::{CertKind, IssuedCert};

/// The windows of `fleetmq_certificates_expiring`.
const WINDOWS: [(&str, Duration); 2] = [("7d", Duration::days(7)), ("30d", Duration::days(30))];

/// The gauges and counter, registered with the broker's metrics.
#[derive(Debug, Clone)]
pub struct Gauges {
    by_state: IntGaugeVec,
    expiring: IntGaugeVec,
    pending: IntGauge,
    answers: IntCounterVec,
}

impl Gauges {
    pub fn new(metrics: &crate::observe::Metrics) -> Result<Gauges, prometheus::Error> {
        let gauges = Gauges {
            by_state: IntGaugeVec::new(
                Opts::new(
                    "fleetmq_certificates",
                    "Device certificates in the lab PKI index, by state (valid, expired, revoked).",
                ),
                &["state"],
            )?,
            expiring: IntGaugeVec::new(
                Opts::new(
                    "fleetmq_certificates_expiring",
                    "Valid, unrevoked device certificates that expire within the window and have no renewal yet.",
                ),
                &["within"],
            )?,
            pending: IntGauge::new(
                "fleetmq_provision_pending",
                "Provisioning requests waiting for an operator's approval.",
            )?,
            answers: IntCounterVec::new(
                Opts::new(
                    "fleetmq_provision_answers_total",
                    "Provisioning answers, by outcome (issued, pending, or the refusal reason).",
                ),
                &["outcome"],
            )?,
        };
        metrics.register(Box::new(gauges.by_state.clone()))?;
        metrics.register(Box::new(gauges.expiring.clone()))?;
        metrics.register(Box::new(gauges.pending.clone()))?;
        metrics.register(Box::new(gauges.answers.clone()))?;
        Ok(gauges)
    }

    /// Counts one answer.
    pub fn answered(&self, outcome: &str) {
        self.answers.with_label_values(&[outcome]).inc();
    }

    /// Recomputes the gauges from the index and the pending count.
    pub fn refresh(&self, certs: &[IssuedCert], pending: usize, now: OffsetDateTime) {
        let counts = count(certs, now);
        self.by_state
            .with_label_values(&["valid"])
            .set(counts.valid);
        self.by_state
            .with_label_values(&["expired"])
            .set(counts.expired);
        self.by_state
            .with_label_values(&["revoked"])
            .set(counts.revoked);
        for ((label, _), expiring) in WINDOWS.iter().zip(counts.expiring) {
            self.expiring.with_label_values(&[label]).set(expiring);
        }
        self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
    }
}

/// What the gauges show, computed without touching them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    valid: i64,
    expired: i64,
    revoked: i64,
    expiring: [i64; 2],
}

fn count(certs: &[IssuedCert], now: OffsetDateTime) -> Counts {
    let mut counts = Counts::default();
    let renewed: std::collections::HashSet<&str> = certs
        .iter()
        .filter_map(|cert| cert.replaces.as_deref())
        .collect();
    for cert in certs.iter().filter(|cert| cert.kind == CertKind::Device) {
        if cert.revoked_at.is_some() {
            counts.revoked += 1;
        } else if cert.not_after <= now {
            counts.expired += 1;
        } else {
            counts.valid += 1;
            if renewed.contains(cert.serial.as_str()) {
                continue;
            }
            for (slot, (_, window)) in counts.expiring.iter_mut().zip(WINDOWS) {
                if cert.not_after - now <= window {
                    *slot += 1;
                }
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::certs::KeyType;

    fn cert(serial: &str, days: i64, revoked: bool, replaces: Option<&str>) -> IssuedCert {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        IssuedCert {
            kind: CertKind::Device,
            id: "esp32_1".into(),
            group: None,
            key: KeyType::EcdsaP256,
            serial: serial.into(),
            fingerprint: String::new(),
            issued_at: now,
            not_after: now + Duration::days(days),
            days_left: days,
            revoked_at: revoked.then_some(now),
            cert_path: Default::default(),
            issued_by: None,
            replaces: replaces.map(str::to_owned),
        }
    }

    #[test]
    fn states_and_windows() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let certs = [
            cert("a", 3, false, None),
            cert("b", 20, false, None),
            cert("c", 400, false, None),
            cert("d", -1, false, None),
            cert("e", 5, true, None),
            // "f" expires in 2 days but was renewed by "g".
            cert("f", 2, false, None),
            cert("g", 365, false, Some("f")),
        ];
        assert_eq!(
            count(&certs, now),
            Counts {
                valid: 5,
                expired: 1,
                revoked: 1,
                expiring: [1, 2],
            }
        );
    }
}
