//! X.509 names as text, exactly as x509-parser's `Display` writes them
//! (`CN=dev-a, OU=ops`; ` + ` inside a multi-valued RDN), built in one
//! string: its `Display` makes three or four strings per attribute and a
//! copy of the whole (17 allocations for a device certificate's subject and
//! issuer, on every mutual-TLS handshake). Names with a value that is not a
//! plain string (BMPString, binary) or not UTF-8 go through `Display`
//! itself, so the text never differs.

use std::fmt::Write;

use x509_parser::asn1_rs::Tag;
use x509_parser::objects::{oid2abbrev, oid_registry};
use x509_parser::x509::X509Name;

/// The name's text, with no spare capacity (a held connection keeps it).
pub fn name_text(name: &X509Name<'_>) -> String {
    fast(name).unwrap_or_else(|| {
        let mut text = name.to_string();
        text.shrink_to_fit();
        text
    })
}

/// `None`: an attribute this does not write (the caller uses `Display`).
fn fast(name: &X509Name<'_>) -> Option<String> {
    let registry = oid_registry();
    // The text is shorter than the DER plus separators: one allocation.
    let mut text = String::with_capacity(name.as_raw().len() + 16);
    for (i, rdn) in name.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                text.push_str(" + ");
            }
            let value = attr.attr_value();
            let plain = matches!(
                value.tag(),
                Tag::NumericString
                    | Tag::VisibleString
                    | Tag::PrintableString
                    | Tag::GeneralString
                    | Tag::ObjectDescriptor
                    | Tag::GraphicString
                    | Tag::T61String
                    | Tag::VideotexString
                    | Tag::Utf8String
                    | Tag::Ia5String
            );
            if !plain {
                return None;
            }
            let value = std::str::from_utf8(value.data).ok()?;
            match oid2abbrev(attr.attr_type(), registry) {
                Ok(abbrev) => text.push_str(abbrev),
                Err(_) => write!(text, "{:?}", attr.attr_type()).ok()?,
            }
            text.push('=');
            text.push_str(value);
        }
    }
    text.shrink_to_fit();
    Some(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};
    use x509_parser::prelude::{FromDer, X509Certificate};

    /// A self-signed certificate's subject (= issuer), as `name_text` and
    /// as x509-parser's `Display` write it.
    fn both(entries: &[(DnType, DnValue)]) -> (String, String) {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for (kind, value) in entries {
            dn.push(kind.clone(), value.clone());
        }
        params.distinguished_name = dn;
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
        (name_text(parsed.subject()), parsed.subject().to_string())
    }

    #[test]
    fn writes_what_x509_parser_writes() {
        let utf8 = |s: &str| DnValue::Utf8String(s.to_string());
        let cases: Vec<Vec<(DnType, DnValue)>> = vec![
            vec![(DnType::CommonName, utf8("dev-a"))],
            vec![
                (DnType::CommonName, utf8("dev-a")),
                (DnType::OrganizationalUnitName, utf8("ops")),
                (DnType::OrganizationName, utf8("Lab, Inc.")),
                (
                    DnType::CountryName,
                    DnValue::PrintableString("DE".try_into().unwrap()),
                ),
            ],
            vec![(DnType::CommonName, utf8("gerät-ü"))],
            // An attribute without an abbreviation: its OID, as Display has it.
            vec![
                (
                    DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 99999, 1]),
                    utf8("x"),
                ),
                (DnType::CommonName, utf8("y")),
            ],
            // Not a plain string: Display writes it (the fallback).
            vec![(
                DnType::CommonName,
                DnValue::BmpString("bmp".try_into().unwrap()),
            )],
            vec![(
                DnType::CommonName,
                DnValue::Ia5String("ia5".try_into().unwrap()),
            )],
        ];
        for entries in cases {
            let (ours, theirs) = both(&entries);
            assert_eq!(ours, theirs, "{entries:?}");
            assert_eq!(ours.capacity(), ours.len());
        }
    }

    #[test]
    fn the_fast_path_takes_plain_names_and_leaves_bmp_strings() {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(
            DnType::CommonName,
            DnValue::BmpString("b".try_into().unwrap()),
        );
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
        assert_eq!(fast(parsed.subject()), None);
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "plain");
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
        assert_eq!(fast(parsed.subject()).as_deref(), Some("CN=plain"));
    }
}
