//! X.509 names as text, exactly as x509-parser's `Display` writes them
//! (`CN=dev-a, OU=ops`; ` + ` inside a multi-valued RDN), built in one
//! string: its `Display` makes three or four strings per attribute and a
//! copy of the whole (17 allocations for a device certificate's subject and
//! issuer, on every mutual-TLS handshake). Names with a value that is not a
//! plain string (BMPString, binary) or not UTF-8 go through `Display`
//! itself, so the text never differs. Issuers, the same for a whole fleet,
//! are shared between certificates ([`shared_issuer`]), and so are lists
//! of organizational units ([`shared_units`]).

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::sync::{Arc, Mutex, OnceLock};

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

/// Issuers kept at most by [`shared_issuer`] (beyond, names are not shared).
const MAX_SHARED_ISSUERS: usize = 256;

/// The issuer's text, one `Arc<str>` per distinct issuer for the whole
/// process: every device certificate of a lab CA names the same issuer,
/// and each held connection kept its own copy (twice: the certificate's
/// facts and its session's revocation key). Bounded by
/// [`MAX_SHARED_ISSUERS`]; a poisoned lock only stops the sharing.
pub fn shared_issuer(name: &X509Name<'_>) -> Arc<str> {
    static ISSUERS: OnceLock<Mutex<HashSet<Arc<str>>>> = OnceLock::new();
    let text = name_text(name);
    let Ok(mut issuers) = ISSUERS.get_or_init(Default::default).lock() else {
        return text.into();
    };
    if let Some(known) = issuers.get(text.as_str()) {
        return Arc::clone(known);
    }
    let text: Arc<str> = text.into();
    if issuers.len() < MAX_SHARED_ISSUERS {
        issuers.insert(Arc::clone(&text));
    }
    text
}

/// Lists of units kept at most by [`shared_units`].
const MAX_SHARED_UNITS: usize = 256;

/// A certificate's organizational units, shared.
pub type Units = Arc<[Arc<str>]>;

/// The organizational units, one list per distinct list for the whole
/// process (a fleet has a few groups; each held connection kept its own
/// `Vec` of `String`s). Bounded by [`MAX_SHARED_UNITS`].
pub fn shared_units<'a>(units: impl Iterator<Item = &'a str>) -> Units {
    static UNITS: OnceLock<Mutex<HashMap<Vec<String>, Units>>> = OnceLock::new();
    let units: Vec<String> = units.map(str::to_string).collect();
    if units.is_empty() {
        static NONE: OnceLock<Units> = OnceLock::new();
        return Arc::clone(NONE.get_or_init(|| Arc::from(Vec::new())));
    }
    let Ok(mut lists) = UNITS.get_or_init(Default::default).lock() else {
        return units.iter().map(|unit| Arc::from(unit.as_str())).collect();
    };
    if let Some(known) = lists.get(&units) {
        return Arc::clone(known);
    }
    let list: Units = units.iter().map(|unit| Arc::from(unit.as_str())).collect();
    if lists.len() < MAX_SHARED_UNITS {
        lists.insert(units, Arc::clone(&list));
    }
    list
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

    #[test]
    fn an_issuer_is_one_string_for_all_its_certificates() {
        let issued = |issuer: &str| {
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, issuer);
            let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
            crate::peer::PeerCertificate::from_der(cert.der()).unwrap()
        };
        let (a, b, other) = (issued("shared CA"), issued("shared CA"), issued("other CA"));
        assert_eq!(&*a.issuer, "CN=shared CA");
        assert!(Arc::ptr_eq(&a.issuer, &b.issuer));
        assert!(!Arc::ptr_eq(&a.issuer, &other.issuer));
        // The session's revocation key holds the same strings.
        let serial = crate::peer::CertificateSerial::of(&a);
        assert!(Arc::ptr_eq(&serial.issuer, &a.issuer));
        assert!(Arc::ptr_eq(&serial.serial, &a.serial));
    }

    #[test]
    fn a_list_of_units_is_one_list_for_all_its_certificates() {
        let a = shared_units(["ops", "lab"].into_iter());
        let b = shared_units(["ops", "lab"].into_iter());
        let other = shared_units(["lab", "ops"].into_iter());
        assert_eq!(a.iter().map(|u| &**u).collect::<Vec<_>>(), ["ops", "lab"]);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other));
        assert!(shared_units(std::iter::empty()).is_empty());
    }
}
