//! A listener's cipher suites (`tls.cipher_suites`; Mosquitto's `ciphers`
//! and `ciphers_tls1.3`): names checked against what the crypto provider
//! offers, and the provider narrowed to them.
//!
//! Owns: the name lookup and the narrowing. Must not: translate OpenSSL
//! cipher strings (the mosquitto translator does, into these names), or
//! add suites the provider lacks: the list can only remove.

use rustls::crypto::CryptoProvider;
use rustls::SupportedCipherSuite;

/// The IANA name of a suite ("TLS_AES_128_GCM_SHA256",
/// "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"), as written in the config.
pub fn iana_name(suite: SupportedCipherSuite) -> String {
    let name = suite.suite().as_str().map_or_else(
        || format!("{:?}", suite.suite()),
        std::string::ToString::to_string,
    );
    // rustls spells TLS 1.3 suites "TLS13_..."; IANA and OpenSSL "TLS_...".
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// Narrows `provider` to `names` (in the provider's order of preference).
/// Empty: the provider's own list. An unknown name, or a list leaving an
/// enabled TLS version without a suite, is an error naming what to fix.
pub fn narrow(
    mut provider: CryptoProvider,
    names: &[String],
    tls12_enabled: bool,
) -> Result<CryptoProvider, String> {
    if names.is_empty() {
        return Ok(provider);
    }
    let offered: Vec<String> = provider
        .cipher_suites
        .iter()
        .map(|s| iana_name(*s))
        .collect();
    if let Some(unknown) = names.iter().find(|name| !offered.contains(name)) {
        return Err(format!(
            "cipher suite {unknown:?} is not one fleetmq offers (tls.cipher_suites takes: {})",
            offered.join(", ")
        ));
    }
    provider
        .cipher_suites
        .retain(|suite| names.contains(&iana_name(*suite)));
    let has = |tls13: bool| {
        provider
            .cipher_suites
            .iter()
            .any(|suite| matches!(suite, SupportedCipherSuite::Tls13(_)) == tls13)
    };
    if !has(true) {
        return Err("tls.cipher_suites names no TLS 1.3 suite (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384 or TLS_CHACHA20_POLY1305_SHA256): TLS 1.3 clients could not connect".to_string());
    }
    if tls12_enabled && !has(false) {
        return Err("tls.cipher_suites names no TLS 1.2 suite while tls.min_version is 1.2: add one (TLS_ECDHE_..._GCM_...) or set min_version = \"1.3\"".to_string());
    }
    Ok(provider)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn names_are_iana_spellings() {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let all: Vec<String> = provider
            .cipher_suites
            .iter()
            .map(|s| iana_name(*s))
            .collect();
        assert!(
            all.contains(&"TLS_AES_128_GCM_SHA256".to_string()),
            "{all:?}"
        );
        assert!(
            all.contains(&"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".to_string()),
            "{all:?}"
        );
    }

    #[test]
    fn narrowing_keeps_only_the_named_suites() {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let narrowed = narrow(
            provider,
            &names(&[
                "TLS_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            ]),
            true,
        )
        .unwrap();
        let kept: Vec<String> = narrowed
            .cipher_suites
            .iter()
            .map(|s| iana_name(*s))
            .collect();
        assert_eq!(
            kept,
            names(&[
                "TLS_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
            ])
        );
        let empty = narrow(rustls::crypto::aws_lc_rs::default_provider(), &[], true).unwrap();
        assert!(empty.cipher_suites.len() >= 6);
    }

    #[test]
    fn unknown_names_and_missing_versions_are_refused() {
        let unknown = narrow(
            rustls::crypto::aws_lc_rs::default_provider(),
            &names(&["TLS_RSA_WITH_AES_128_CBC_SHA"]),
            true,
        )
        .unwrap_err();
        assert!(
            unknown.contains("TLS_RSA_WITH_AES_128_CBC_SHA"),
            "{unknown}"
        );
        let no12 = narrow(
            rustls::crypto::aws_lc_rs::default_provider(),
            &names(&["TLS_AES_128_GCM_SHA256"]),
            true,
        )
        .unwrap_err();
        assert!(no12.contains("no TLS 1.2 suite"), "{no12}");
        assert!(narrow(
            rustls::crypto::aws_lc_rs::default_provider(),
            &names(&["TLS_AES_128_GCM_SHA256"]),
            false,
        )
        .is_ok());
    }
}
