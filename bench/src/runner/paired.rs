//! The crypto limit paired with the connect storms. The machine is shared
//! and `openssl speed` itself moves by 10–20% between quiet and busy
//! minutes, so one limit from the start of the run cannot price storms
//! made an hour later. Before each broker's storms in each repetition the
//! limit is measured again on the broker's core, and every storm it prices
//! gets two more figures: that limit and its share of it. The report takes
//! the median of those shares.
//!
//! It owns when the paired limit is measured and the two figures; the
//! limit itself (`openssl speed`, what a case may reach) is
//! [`crate::crypto`]'s.

use std::collections::BTreeMap;

use super::broker::Placement;
use super::plan::Plan;
use super::{Runner, QUIET_CORES};
use crate::case::Case;
use crate::crypto::{self, CryptoLimit};
use crate::stats::wait_for_quiet;

/// The paired limit of a storm, connects/s (the case's price, so twice the
/// per-core figure for the two-core case).
pub const LIMIT: &str = "crypto_limit_per_sec";
/// The storm's `connects_per_sec` over [`LIMIT`].
pub const SHARE: &str = "crypto_share";

impl Runner {
    /// `openssl speed` on the broker's core for the storms about to run,
    /// after the same wait for a quiet machine as every storm (None: not
    /// wanted, or it failed, which is said on stderr).
    pub(super) fn paired_limit(&self) -> Option<CryptoLimit> {
        let seconds = self.crypto_seconds?;
        let core = match self.broker_core() {
            Placement::Core(core) => Some(core),
            Placement::Any => None,
        };
        let quiet_wait = Plan::secs(self.plan.quiet_wait_secs);
        if !quiet_wait.is_zero() {
            wait_for_quiet(QUIET_CORES, quiet_wait);
        }
        match crypto::measure(core, seconds) {
            Ok(limit) => {
                eprintln!(
                    "   paired crypto limit: {:.0} ECDSA handshakes/s per core",
                    limit.ecdsa_handshakes_per_sec
                );
                Some(limit)
            }
            Err(error) => {
                eprintln!("   paired openssl speed failed, storms without it: {error:#}");
                None
            }
        }
    }
}

/// Adds [`LIMIT`] and [`SHARE`] to a storm's figures when `limit` prices
/// `case` and the storm has a rate.
pub(super) fn add(figures: &mut BTreeMap<String, f64>, case: Case, limit: Option<&CryptoLimit>) {
    let Some(limit) = limit.and_then(|limit| limit.handshakes_per_sec(case)) else {
        return;
    };
    let Some(rate) = figures.get("connects_per_sec").copied() else {
        return;
    };
    if limit.is_finite() && limit > 0.0 {
        figures.insert(LIMIT.into(), limit);
        figures.insert(SHARE.into(), rate / limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storm(rate: f64) -> BTreeMap<String, f64> {
        BTreeMap::from([("connects_per_sec".to_string(), rate)])
    }

    #[test]
    fn priced_storms_get_their_paired_limit_and_share() {
        let limit = CryptoLimit {
            ecdsa_handshakes_per_sec: 5_000.0,
            rsa_handshakes_per_sec: 2_000.0,
            ..CryptoLimit::default()
        };
        let mut one_core = storm(4_000.0);
        add(&mut one_core, Case::Tls12Ecdsa1Core, Some(&limit));
        assert_eq!(one_core.get(LIMIT), Some(&5_000.0));
        assert_eq!(one_core.get(SHARE), Some(&0.8));
        // First connects: the same price as the storm of 8 certificates.
        let mut first = storm(4_500.0);
        add(&mut first, Case::Tls12EcdsaFirst1Core, Some(&limit));
        assert_eq!(first.get(LIMIT), Some(&5_000.0));
        assert_eq!(first.get(SHARE), Some(&0.9));
        let mut rsa = storm(1_000.0);
        add(&mut rsa, Case::Tls12Rsa1Core, Some(&limit));
        assert_eq!(rsa.get(SHARE), Some(&0.5));
        // Two cores: twice the per-core limit.
        let mut two_cores = storm(9_000.0);
        add(&mut two_cores, Case::Tls12Ecdsa2Cores, Some(&limit));
        assert_eq!(two_cores.get(LIMIT), Some(&10_000.0));
        assert_eq!(two_cores.get(SHARE), Some(&0.9));
    }

    #[test]
    fn unpriced_cases_and_missing_limits_get_nothing() {
        let limit = CryptoLimit {
            ecdsa_handshakes_per_sec: 5_000.0,
            ..CryptoLimit::default()
        };
        for (case, limit) in [
            (Case::Plain1Core, Some(&limit)),
            (Case::Tls13Ecdsa1Core, Some(&limit)),
            (Case::Tls12Ecdsa1Core, None),
            // A limit of zero (a parse gone wrong) prices nothing.
            (Case::Tls12Rsa1Core, Some(&limit)),
        ] {
            let mut figures = storm(4_000.0);
            add(&mut figures, case, limit);
            assert_eq!(figures.len(), 1, "{case}");
        }
    }
}
