//! Reading a device's CSR and refusing anything but a plain request for a
//! device certificate (decision 0151): the signature must verify (the
//! device holds the key), the key must be ECDSA P-256, and the request
//! must not ask for CA:true, key usages, extended key usages other than
//! clientAuth, names other than the device's own, or other extensions.
//! The certificate is then built from the CA's own profile, never from
//! what the CSR asked for; refusing what it asked for anyway tells a
//! confused (or hostile) requester plainly instead of quietly differing.
//!
//! Parsing and signature verification are rcgen's (`from_der`, on
//! x509-parser with aws-lc-rs), the crates `certs` already uses.

use base64::Engine as _;
use rcgen::{
    CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, PublicKeyData, SanType,
};
use rustls::pki_types::CertificateSigningRequestDer;
use x509_parser::prelude::FromDer;

use super::message::Refusal;

/// Largest CSR accepted, in DER bytes.
const MAX_CSR_DER: usize = 4096;

/// A CSR that passed every check.
#[derive(Debug)]
pub struct CheckedCsr {
    /// The requester's public key, signed into the certificate.
    pub public_key: rcgen::PublicKey,
    /// The raw EC point, to compare with earlier certificates' keys.
    pub raw_key: Vec<u8>,
}

/// Why a CSR was refused.
pub type CsrRefusal = (Refusal, String);

/// Decodes `text` (PEM `CERTIFICATE REQUEST`, or base64 DER) and checks it
/// for device `id`.
pub fn check(text: &str, id: &str) -> Result<CheckedCsr, CsrRefusal> {
    let der = decode(text)?;
    let malformed = |detail: String| (Refusal::MalformedCsr, detail);
    let (_, parsed) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|error| malformed(format!("not a PKCS#10 request: {error}")))?;
    let common_names: Vec<&str> = parsed
        .certification_request_info
        .subject
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .collect();
    if common_names.iter().any(|cn| *cn != id) {
        return Err((
            Refusal::IdMismatch,
            format!("the CSR's CN {common_names:?} is not the device id {id:?}"),
        ));
    }
    let request = CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(
        der.as_slice(),
    ))
    .map_err(|error| match error {
        rcgen::Error::InvalidCertificationRequestSignature => {
            malformed("its signature does not verify with its own key".to_owned())
        }
        rcgen::Error::UnsupportedExtension => (
            Refusal::ForbiddenRequest,
            "it carries an extension a device certificate request must not have".to_owned(),
        ),
        rcgen::Error::UnsupportedSignatureAlgorithm => (
            Refusal::UnsupportedKey,
            "only ECDSA P-256 with SHA-256 is accepted".to_owned(),
        ),
        other => malformed(other.to_string()),
    })?;
    if request.public_key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
        return Err((
            Refusal::UnsupportedKey,
            "only ECDSA P-256 with SHA-256 is accepted".to_owned(),
        ));
    }
    let params = &request.params;
    if matches!(params.is_ca, IsCa::Ca(_)) {
        return Err((
            Refusal::ForbiddenRequest,
            "it asks for CA:true; devices get end-entity certificates only".to_owned(),
        ));
    }
    if !params.key_usages.is_empty() {
        return Err((
            Refusal::ForbiddenRequest,
            "it asks for key usages; the CA sets digitalSignature itself".to_owned(),
        ));
    }
    if params
        .extended_key_usages
        .iter()
        .any(|usage| *usage != ExtendedKeyUsagePurpose::ClientAuth)
    {
        return Err((
            Refusal::ForbiddenRequest,
            "it asks for an extended key usage other than clientAuth".to_owned(),
        ));
    }
    let own_uri = format!("urn:fleetmq:device:{id}");
    if params
        .subject_alt_names
        .iter()
        .any(|san| !matches!(san, SanType::URI(uri) if uri.as_str() == own_uri))
    {
        return Err((
            Refusal::ForbiddenRequest,
            format!("it asks for a subject alternative name other than {own_uri}"),
        ));
    }
    let raw_key = request.public_key.der_bytes().to_vec();
    Ok(CheckedCsr {
        public_key: request.public_key,
        raw_key,
    })
}

/// PEM or base64 DER to DER.
fn decode(text: &str) -> Result<Vec<u8>, CsrRefusal> {
    let malformed = |detail: &str| (Refusal::MalformedCsr, detail.to_owned());
    let text = text.trim();
    let der = if text.starts_with("-----BEGIN") {
        let pem =
            pem_block(text).ok_or_else(|| malformed("PEM without a CERTIFICATE REQUEST block"))?;
        base64::engine::general_purpose::STANDARD
            .decode(pem)
            .map_err(|_| malformed("PEM body is not base64"))?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text.replace(['\n', '\r'], ""))
            .map_err(|_| malformed("neither PEM nor base64 DER"))?
    };
    if der.is_empty() || der.len() > MAX_CSR_DER {
        return Err(malformed("empty, or larger than 4096 bytes"));
    }
    Ok(der)
}

/// The base64 body of the first `CERTIFICATE REQUEST` block.
fn pem_block(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("-----BEGIN CERTIFICATE REQUEST-----")?;
    let (body, _) = rest.split_once("-----END CERTIFICATE REQUEST-----")?;
    Some(body.chars().filter(|c| !c.is_whitespace()).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, KeyPair, KeyUsagePurpose,
    };

    fn csr(id: &str, edit: impl FnOnce(&mut CertificateParams)) -> String {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, id);
        params.distinguished_name = name;
        edit(&mut params);
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn a_plain_request_passes_as_pem_and_as_base64_der() {
        let pem = csr("esp32_1", |_| {});
        let checked = check(&pem, "esp32_1").unwrap();
        assert_eq!(checked.raw_key.len(), 65);
        let der = pem_block(&pem).unwrap();
        check(&der, "esp32_1").unwrap();
        let own_san = csr("esp32_1", |p| {
            p.subject_alt_names = vec![SanType::URI(
                "urn:fleetmq:device:esp32_1".try_into().unwrap(),
            )];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        });
        check(&own_san, "esp32_1").unwrap();
    }

    #[test]
    fn what_a_device_must_not_ask_for_is_refused() {
        let cases: Vec<(String, Refusal)> = vec![
            (
                csr("esp32_1", |p| {
                    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)
                }),
                Refusal::ForbiddenRequest,
            ),
            (
                csr("esp32_1", |p| {
                    p.key_usages = vec![KeyUsagePurpose::KeyCertSign]
                }),
                Refusal::ForbiddenRequest,
            ),
            (
                csr("esp32_1", |p| {
                    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]
                }),
                Refusal::ForbiddenRequest,
            ),
            (
                csr("esp32_1", |p| {
                    p.subject_alt_names = vec![SanType::DnsName("broker".try_into().unwrap())]
                }),
                Refusal::ForbiddenRequest,
            ),
            (csr("esp32_2", |_| {}), Refusal::IdMismatch),
            ("not a csr".to_owned(), Refusal::MalformedCsr),
            (
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"
                    .to_owned(),
                Refusal::MalformedCsr,
            ),
        ];
        for (text, expected) in cases {
            let (reason, detail) = check(&text, "esp32_1").unwrap_err();
            assert_eq!(reason, expected, "{detail}");
        }
    }

    #[test]
    fn a_tampered_signature_is_refused() {
        let pem = csr("esp32_1", |_| {});
        let mut der = base64::engine::general_purpose::STANDARD
            .decode(pem_block(&pem).unwrap())
            .unwrap();
        let last = der.len() - 1;
        der[last] ^= 1;
        let text = base64::engine::general_purpose::STANDARD.encode(&der);
        let (reason, detail) = check(&text, "esp32_1").unwrap_err();
        assert_eq!(reason, Refusal::MalformedCsr, "{detail}");
    }

    #[test]
    fn rsa_keys_are_refused() {
        let key =
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        let (reason, _) = check(&pem, "esp32_1").unwrap_err();
        assert_eq!(reason, Refusal::UnsupportedKey);
    }
}
