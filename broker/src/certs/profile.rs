//! What goes into each kind of certificate (the CA, a server, a device),
//! key generation, and the checks on names that end up both in
//! certificates and in file names.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, RsaKeySize, SanType,
};
use time::{Duration, OffsetDateTime};

use super::{CertError, KeyType, MAX_DAYS};

/// Certificates start an hour in the past, so a device or broker whose
/// clock is a little behind does not reject a certificate issued just now.
const BACKDATE: Duration = Duration::hours(1);

/// Longest device id, server name or group accepted.
const MAX_NAME_LEN: usize = 64;

/// A fresh key pair of the given type.
pub(crate) fn generate_key(key: KeyType) -> Result<KeyPair, CertError> {
    match key {
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
    }
    .map_err(CertError::crypto("key pair"))
}

/// Now, to the second (certificates carry no fractions).
pub(crate) fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// Checks a validity in days.
pub(crate) fn check_days(days: u32) -> Result<(), CertError> {
    if days == 0 || days > MAX_DAYS {
        return Err(CertError::InvalidDays {
            days,
            max: MAX_DAYS,
        });
    }
    Ok(())
}

/// Checks a device id or server name: it becomes a CN and a file name, so
/// it must not contain '/', start with '.' or be empty.
pub(crate) fn check_name(kind: &'static str, name: &str) -> Result<(), CertError> {
    let invalid = |reason| CertError::InvalidName {
        kind,
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("it is longer than 64 characters"));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(invalid("it starts with '.' or '-'"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(
            "it has a character other than letters, digits, '.', '_' or '-'",
        ));
    }
    Ok(())
}

/// Checks a DNS name for a subjectAltName (a leading `*.` is allowed).
pub(crate) fn check_dns_name(name: &str) -> Result<(), CertError> {
    let labels = name.strip_prefix("*.").unwrap_or(name);
    let valid = !labels.is_empty()
        && labels.len() <= 253
        && labels.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid {
        Ok(())
    } else {
        Err(CertError::InvalidDnsName {
            name: name.to_owned(),
        })
    }
}

/// Checks a device group, which becomes the certificate's OU.
pub(crate) fn check_group(group: &str) -> Result<(), CertError> {
    if group.trim().is_empty()
        || group.chars().count() > MAX_NAME_LEN
        || group.chars().any(char::is_control)
    {
        return Err(CertError::InvalidGroup {
            group: group.to_owned(),
        });
    }
    Ok(())
}

/// The lab CA: may sign end-entity certificates and CRLs, and nothing else
/// (path length 0: no intermediate CAs below it).
pub(crate) fn ca_params(common_name: &str, days: u32) -> CertificateParams {
    let mut params = base_params(common_name, days);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A broker's TLS server certificate, valid for `dns_names` and `ips`.
pub(crate) fn server_params(
    name: &str,
    dns_names: &[String],
    ips: &[IpAddr],
    key: KeyType,
    days: u32,
) -> Result<CertificateParams, CertError> {
    let mut params = leaf_params(name, key, days);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    for dns_name in dns_names {
        check_dns_name(dns_name)?;
        let san = SanType::DnsName(dns_name.clone().try_into().map_err(|_| {
            CertError::InvalidDnsName {
                name: dns_name.clone(),
            }
        })?);
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    for ip in ips {
        let san = SanType::IpAddress(*ip);
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    Ok(params)
}

/// A device's TLS client certificate: CN = id, OU = group, and the URI SAN
/// `urn:fleetmq:device:<id>` so that SAN-based identity mapping works too.
pub(crate) fn device_params(
    id: &str,
    group: Option<&str>,
    key: KeyType,
    days: u32,
) -> Result<CertificateParams, CertError> {
    let mut params = leaf_params(id, key, days);
    if let Some(group) = group {
        check_group(group)?;
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, group);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let uri = format!("urn:fleetmq:device:{id}");
    let uri = uri.try_into().map_err(|_| CertError::InvalidName {
        kind: "device",
        name: id.to_owned(),
        reason: "it cannot be written into a URI",
    })?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    Ok(params)
}

/// What server and device certificates share: not a CA, signed with an
/// authority key identifier (so chain building finds the CA), and key
/// usages that fit the key type.
fn leaf_params(common_name: &str, key: KeyType, days: u32) -> CertificateParams {
    let mut params = base_params(common_name, days);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = match key {
        KeyType::EcdsaP256 => vec![KeyUsagePurpose::DigitalSignature],
        // keyEncipherment: TLS 1.2 RSA key exchange (non-ECDHE suites) on
        // older mbedTLS builds needs it.
        KeyType::Rsa2048 => vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
    };
    params
}

/// Subject CN and validity; the serial is left to rcgen, which derives 20
/// bytes from a hash of the (always fresh) public key.
fn base_params(common_name: &str, days: u32) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    params.distinguished_name = subject;
    let now = now();
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(i64::from(days));
    params
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn names_that_are_safe_file_names_pass() {
        for name in ["esp32_807A98", "a", "broker.lab-1", &"x".repeat(64)] {
            check_name("device", name).unwrap();
        }
    }

    #[test]
    fn names_that_escape_the_folder_or_are_odd_fail() {
        for name in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "-rf",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            let error = check_name("device", name).unwrap_err();
            assert!(
                error.to_string().contains("not usable"),
                "{name:?}: {error}"
            );
        }
    }

    #[test]
    fn dns_names() {
        for name in ["localhost", "broker.lab.local", "*.lab.local", "a-1.b"] {
            check_dns_name(name).unwrap();
        }
        for name in ["", "a..b", "-a", "a_b", "*.", "a b", "*"] {
            assert!(check_dns_name(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn groups() {
        check_group("greenhouse-2").unwrap();
        check_group("Labor Süd").unwrap();
        assert!(check_group(" ").is_err());
        assert!(check_group("a\nb").is_err());
    }

    #[test]
    fn days_range() {
        check_days(1).unwrap();
        check_days(MAX_DAYS).unwrap();
        assert!(check_days(0).is_err());
        assert!(check_days(MAX_DAYS + 1).is_err());
    }

    #[test]
    fn server_sans_are_deduplicated() {
        let dns = vec!["localhost".to_owned(), "localhost".to_owned()];
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        let params = server_params("localhost", &dns, &ips, KeyType::EcdsaP256, 10).unwrap();
        assert_eq!(params.subject_alt_names.len(), 2);
    }
}
