//! `report.md`: the page, section by section. The explanatory prose lives
//! in the markdown templates under `text/` (with `{name}` placeholders
//! filled here); the tables come from [`super::figures`] and
//! [`super::targets`].
//!
//! It owns the order of the sections and the filling of the templates; it
//! must not compute figures (the parent module's queries do).

use std::fmt::Write;

use anyhow::Result;

use super::Report;
use crate::case::Case;
use crate::crypto::CryptoLimit;
use crate::runner::broker::{MAX_INFLIGHT, MAX_QUEUED};
use crate::runner::Record;

/// Title, how the page was made, and the machine up to the broker list.
const INTRO: &str = include_str!("text/intro.md");
/// What every broker shares, after the broker list.
const SAME_SETUP: &str = include_str!("text/same-setup.md");
/// The `openssl speed` limit and each broker's share of it.
const CRYPTO: &str = include_str!("text/crypto.md");
/// Its `{paired}` paragraph, when the shares are paired (`runner::paired`).
const CRYPTO_PAIRED: &str = include_str!("text/crypto-paired.md");

/// The template with each `{name}` replaced by its value, in one pass (a
/// value is never searched for placeholders; an unknown `{name}` stays).
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let name = &after[..close];
            values
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (value, close))
        });
        match value {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl Report {
    /// The whole page; `plots` are the SVG files written next to it.
    pub(super) fn markdown(&self, plots: &[&str]) -> Result<String> {
        let mut md = String::new();
        let m = &self.machine;
        md.push_str(&fill(
            INTRO,
            &[
                ("generated_at", self.generated_at.clone()),
                ("command", self.command.clone()),
                ("plan", self.plan.name.to_string()),
                ("reps", self.plan.reps.to_string()),
                ("cpu_model", m.cpu_model.clone()),
                ("cores", m.cores.to_string()),
                ("memory_gib", format!("{:.0}", m.memory_gib)),
                ("kernel", m.kernel.clone()),
                ("nofile", m.nofile.clone()),
                ("verify", format!("{:?}", self.verify)),
                ("nat_sources", self.plan.fleet_nat_sources.to_string()),
            ],
        ));
        for broker in &self.brokers {
            let _ = writeln!(
                md,
                "- {}: {} (`{}`)",
                broker.kind, broker.version, broker.bin
            );
        }
        md.push_str(&fill(
            SAME_SETUP,
            &[
                ("max_inflight", MAX_INFLIGHT.to_string()),
                ("max_queued", MAX_QUEUED.to_string()),
                ("nat_sources", self.plan.fleet_nat_sources.to_string()),
            ],
        ));
        md.push('\n');
        if let Some(crypto) = &self.crypto {
            self.crypto_section(&mut md, crypto);
        }

        self.figures_section(&mut md)?;
        self.targets_section(&mut md);

        let failures: Vec<&Record> = self.records.iter().filter(|r| r.error.is_some()).collect();
        if !failures.is_empty() {
            let _ = writeln!(md, "## Failed measurements\n");
            for r in failures {
                let _ = writeln!(
                    md,
                    "- {} {} (rep {}): {}",
                    r.broker,
                    r.case,
                    r.rep + 1,
                    r.error.as_deref().unwrap_or("").replace('\n', " ")
                );
            }
            let _ = writeln!(md);
        }
        if !plots.is_empty() {
            let _ = writeln!(md, "## Plots\n");
            for plot in plots {
                let _ = writeln!(md, "![{plot}]({plot})\n");
            }
        }
        let _ = writeln!(
            md,
            "## Plan\n\n```json\n{}\n```",
            serde_json::to_string_pretty(&self.plan).unwrap_or_default()
        );
        Ok(md)
    }

    fn crypto_section(&self, md: &mut String, crypto: &CryptoLimit) {
        let mut shares = Vec::new();
        for kind in self.kinds() {
            let share = |case: Case| match self.crypto_share(kind, case) {
                share if share.is_finite() => format!("{:.0}%", 100.0 * share),
                _ => "–".into(),
            };
            shares.push(format!(
                "| {kind} | {} | {} | {} | {} |",
                share(Case::Tls12Ecdsa1Core),
                share(Case::Tls12EcdsaFirst1Core),
                share(Case::Tls12Rsa1Core),
                share(Case::Tls12Ecdsa2Cores),
            ));
        }
        let rate = |value: f64| format!("{value:.0}");
        let paired = match self.paired_limits(Case::Tls12Ecdsa1Core) {
            Some((lo, hi)) => {
                let values = [("paired_min", rate(lo)), ("paired_max", rate(hi))];
                fill(CRYPTO_PAIRED, &values) + "\n"
            }
            None => String::new(),
        };
        md.push_str(&fill(
            CRYPTO,
            &[
                ("openssl_version", crypto.openssl_version.clone()),
                ("ecdsa_sign", rate(crypto.ecdsa_p256_sign_per_sec)),
                ("ecdsa_verify", rate(crypto.ecdsa_p256_verify_per_sec)),
                ("x25519", rate(crypto.x25519_per_sec)),
                ("rsa_sign", rate(crypto.rsa2048_sign_per_sec)),
                ("ecdsa_handshake_us", rate(crypto.ecdsa_handshake_us)),
                ("ecdsa_handshakes", rate(crypto.ecdsa_handshakes_per_sec)),
                ("rsa_handshake_us", rate(crypto.rsa_handshake_us)),
                ("rsa_handshakes", rate(crypto.rsa_handshakes_per_sec)),
                ("paired", paired),
                ("shares", shares.join("\n")),
            ],
        ));
        md.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{paired_reps, report_of};
    use crate::runner::paired;

    /// The crypto section of `report` (which has a one-off limit).
    fn crypto_section(report: &Report) -> String {
        let mut md = String::new();
        if let Some(crypto) = &report.crypto {
            report.crypto_section(&mut md, crypto);
        }
        md
    }

    #[test]
    fn crypto_section_shows_paired_shares_and_the_range_of_paired_limits() {
        let md = crypto_section(&report_of(paired_reps(), Some(5_000.0)));
        assert!(
            md.contains("(ECDSA limit 4000–5000 handshakes/s per core"),
            "{md}"
        );
        assert!(md.contains("\n\nThe shares are paired: "), "{md}");
        assert!(md.contains(".\n\nShare of the limit reached:"), "{md}");
        assert!(md.contains("| fleetmq | 96% | – | – | – |"), "{md}");
    }

    #[test]
    fn crypto_section_without_paired_shares_divides_by_the_one_limit() {
        let mut records = paired_reps();
        for record in &mut records {
            record.figures.remove(paired::SHARE);
            record.figures.remove(paired::LIMIT);
        }
        let md = crypto_section(&report_of(records, Some(5_000.0)));
        assert!(!md.contains("paired"), "{md}");
        assert!(md.contains("/s**.\n\nShare of the limit reached:"), "{md}");
        assert!(md.contains("| fleetmq | 86% | – | – | – |"), "{md}");
    }

    #[test]
    fn fill_replaces_known_names_once_and_keeps_the_rest() {
        let values = [("a", "{b}".to_string()), ("b", "B".to_string())];
        assert_eq!(fill("x {a} {b} {c} {", &values), "x {b} B {c} {");
    }

    #[test]
    fn templates_end_with_one_newline() {
        // The page's blank lines are the code's: an editor adding or
        // removing a final newline must not change the report.
        for template in [INTRO, SAME_SETUP, CRYPTO, CRYPTO_PAIRED] {
            assert!(template.ends_with('\n') && !template.ends_with("\n\n"));
        }
    }
}
