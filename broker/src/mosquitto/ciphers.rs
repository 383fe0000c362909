//! Mosquitto's `ciphers` (an OpenSSL cipher string for TLS 1.2) and
//! `ciphers_tls1.3` (a list of TLS 1.3 suites) read into the IANA names of
//! `tls.cipher_suites`, limited to the suites rustls has.
//!
//! OpenSSL strings are evaluated the way OpenSSL does for what rustls can
//! offer: names and keywords add (`HIGH`, `ECDHE+AESGCM`, ...), `!` and `-`
//! remove, `+NAME` and `@...` only order (ignored: rustls keeps its own
//! preference). A keyword matching only suites rustls lacks (`3DES`,
//! `aNULL`, ...) adds nothing. Tokens it cannot read are reported.
//!
//! Owns: the cipher string reading. Must not: decide which suites exist
//! (the TLS module checks the names against the provider).

/// The TLS 1.2 suites rustls offers: OpenSSL name, IANA name.
const TLS12: &[(&str, &str)] = &[
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// The TLS 1.3 suites rustls offers (OpenSSL uses the IANA names).
pub(crate) const TLS13: &[&str] = &[
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Every TLS 1.2 suite's IANA name, in rustls's order.
pub(crate) fn all_tls12() -> Vec<String> {
    TLS12.iter().map(|(_, iana)| (*iana).to_string()).collect()
}

/// Keywords (and OpenSSL names) matching only suites rustls lacks.
const NOTHING_IN_RUSTLS: &[&str] = &[
    "aNULL",
    "eNULL",
    "NULL",
    "COMPLEMENTOFALL",
    "COMPLEMENTOFDEFAULT",
    "MD5",
    "RC4",
    "3DES",
    "DES",
    "IDEA",
    "SEED",
    "EXPORT",
    "EXP",
    "LOW",
    "MEDIUM",
    "PSK",
    "kPSK",
    "ECDHEPSK",
    "DHEPSK",
    "RSAPSK",
    "SRP",
    "DSS",
    "aDSS",
    "CAMELLIA",
    "ARIA",
    "kRSA",
    "CBC",
    "SHA1",
    "SHA",
    "DHE",
    "EDH",
    "kDHE",
    "kEDH",
    "ADH",
    "AECDH",
    "kECDH",
    "AESCCM",
    "AESCCM8",
    "CCM",
    "SUITEB192",
    "GOST",
    "aGOST",
    "kGOST",
    "TLSv1",
    "TLSv1.0",
    "SSLv3",
];

/// The TLS 1.2 suites (OpenSSL names) a single keyword or name selects;
/// None when the token is not understood.
fn select(token: &str) -> Option<Vec<&'static str>> {
    let all = || TLS12.iter().map(|(name, _)| *name);
    let with = |part: &str| all().filter(|name| name.contains(part)).collect::<Vec<_>>();
    if let Some((name, _)) = TLS12.iter().find(|(name, _)| *name == token) {
        return Some(vec![*name]);
    }
    if TLS12.iter().any(|(_, iana)| *iana == token) {
        return TLS12
            .iter()
            .find(|(_, iana)| *iana == token)
            .map(|(n, _)| vec![*n]);
    }
    if NOTHING_IN_RUSTLS.contains(&token) {
        return Some(Vec::new());
    }
    let selected = match token {
        "ALL" | "DEFAULT" | "HIGH" | "FIPS" | "SECURE" | "AEAD" | "ECDHE" | "EECDH" | "kECDHE"
        | "kEECDH" | "TLSv1.2" => all().collect(),
        "AES" | "AESGCM" => with("-AES"),
        "AES128" => with("AES128"),
        "AES256" => with("AES256"),
        "CHACHA20" => with("CHACHA20"),
        "ECDSA" | "aECDSA" => with("-ECDSA-"),
        "RSA" | "aRSA" => with("-RSA-"),
        "SHA256" => with("SHA256").into_iter().chain(with("CHACHA20")).collect(),
        "SHA384" => with("SHA384"),
        "SUITEB128" | "SUITEB128ONLY" | "SUITEB128C2" => {
            all().filter(|n| n.starts_with("ECDHE-ECDSA-AES")).collect()
        }
        _ => return None,
    };
    Some(selected)
}

/// `ciphers`: the TLS 1.2 suites (IANA names) and the tokens not read.
pub(crate) fn tls12(cipher_string: &str) -> (Vec<String>, Vec<String>) {
    let mut added: Vec<&str> = Vec::new();
    let mut removed: Vec<&str> = Vec::new();
    let mut unread = Vec::new();
    for token in cipher_string
        .split([':', ',', ' '])
        .filter(|t| !t.is_empty())
    {
        if token.starts_with('@') || token.starts_with('+') {
            continue; // ordering and security levels: rustls keeps its own
        }
        let (remove, body) = match token.strip_prefix(['!', '-']) {
            Some(body) => (true, body),
            None => (false, token),
        };
        // `A+B`: the suites both select.
        let mut selected: Option<Vec<&str>> = None;
        let mut understood = true;
        for part in body.split('+') {
            match select(part) {
                Some(these) => {
                    selected = Some(match selected {
                        None => these,
                        Some(before) => before.into_iter().filter(|n| these.contains(n)).collect(),
                    });
                }
                None => understood = false,
            }
        }
        if !understood {
            unread.push(token.to_string());
            continue;
        }
        let selected = selected.unwrap_or_default();
        if remove {
            removed.extend(selected);
        } else {
            added.extend(selected);
        }
    }
    let suites = TLS12
        .iter()
        .filter(|(name, _)| added.contains(name) && !removed.contains(name))
        .map(|(_, iana)| (*iana).to_string())
        .collect();
    (suites, unread)
}

/// `ciphers_tls1.3`: the TLS 1.3 suites and the names rustls lacks.
pub(crate) fn tls13(list: &str) -> (Vec<String>, Vec<String>) {
    let names: Vec<&str> = list
        .split([':', ',', ' '])
        .filter(|t| !t.is_empty())
        .collect();
    let suites = TLS13
        .iter()
        .filter(|suite| names.contains(suite))
        .map(|suite| (*suite).to_string())
        .collect();
    let unread = names
        .iter()
        .filter(|name| !TLS13.contains(name))
        .map(|name| (*name).to_string())
        .collect();
    (suites, unread)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn openssl_names_and_keywords_select_rustls_suites() {
        let (suites, unread) = tls12("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA");
        assert_eq!(suites, ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
        assert_eq!(unread, ["ECDHE-RSA-AES128-SHA"]);
        let (suites, unread) = tls12("HIGH:!aNULL:!MD5:!CHACHA20:@STRENGTH");
        assert_eq!(suites.len(), 4, "{suites:?}");
        assert!(suites.iter().all(|s| s.contains("AES")), "{suites:?}");
        assert!(unread.is_empty(), "{unread:?}");
        let (suites, _) = tls12("ECDHE+AESGCM+ECDSA");
        assert_eq!(
            suites,
            [
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        let (suites, unread) = tls12("DES-CBC3-SHA:RC4");
        assert!(suites.is_empty());
        assert_eq!(unread, ["DES-CBC3-SHA"]);
    }

    #[test]
    fn tls13_lists_keep_known_suites() {
        let (suites, unread) = tls13("TLS_AES_128_GCM_SHA256:TLS_AES_128_CCM_SHA256");
        assert_eq!(suites, ["TLS_AES_128_GCM_SHA256"]);
        assert_eq!(unread, ["TLS_AES_128_CCM_SHA256"]);
    }
}
