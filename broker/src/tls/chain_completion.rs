//! Completing the server's certificate chain from CA certificates, as
//! OpenSSL does for Mosquitto: when the certificate file holds only the
//! leaf and no chain file is named, the certificates that chain the leaf
//! up to its root are found among the listener's CA certificates (`cafile`,
//! `capath`: `tls.complete_chain_from`, else `tls.client_ca`) and sent after
//! it, the root included, as OpenSSL's automatic chain building sends it
//! (checked against Debian's Mosquitto 2.0.11, decision 0136).
//!
//! It links certificates by name (issuer to subject) and, where both carry
//! them, by key identifier (authority to subject key id); it checks no
//! signature and no date: the client verifies what it receives, and a wrong
//! candidate fails there exactly as a missing one would. It owns nothing
//! but that search; reading the files is `ca_dir`'s.

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Longest chain searched above the leaf: deeper PKIs do not exist in labs,
/// and the bound stops a loop of cross-signed certificates.
const MAX_DEPTH: usize = 8;

/// The names and key ids of one certificate that linking needs.
#[derive(Clone)]
struct Link<'a> {
    der: &'a CertificateDer<'static>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
}

fn link<'a>(der: &'a CertificateDer<'static>) -> Option<Link<'a>> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let mut subject_key_id = None;
    let mut authority_key_id = None;
    for extension in cert.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key_id = aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => {}
        }
    }
    Some(Link {
        der,
        subject: cert.subject().as_raw().to_vec(),
        issuer: cert.issuer().as_raw().to_vec(),
        subject_key_id,
        authority_key_id,
    })
}

impl Link<'_> {
    fn is_self_issued(&self) -> bool {
        self.subject == self.issuer
    }

    /// Whether `issuer` may have issued `self`.
    fn issued_by(&self, issuer: &Link<'_>) -> bool {
        if self.issuer != issuer.subject {
            return false;
        }
        match (&self.authority_key_id, &issuer.subject_key_id) {
            (Some(wanted), Some(has)) => wanted == has,
            _ => true,
        }
    }
}

/// The certificates of `pool` that chain `leaf` up to a self-issued root,
/// in order (issuer of the leaf first, root last). Stops where no issuer is
/// found: a partial chain is still sent, as OpenSSL sends one.
pub fn complete(
    leaf: &CertificateDer<'static>,
    pool: &[CertificateDer<'static>],
) -> Vec<CertificateDer<'static>> {
    let Some(mut current) = link(leaf) else {
        return Vec::new();
    };
    let candidates: Vec<Link<'_>> = pool.iter().filter_map(link).collect();
    let mut chain: Vec<CertificateDer<'static>> = Vec::new();
    while !current.is_self_issued() && chain.len() < MAX_DEPTH {
        let next = candidates.iter().find(|candidate| {
            current.issued_by(candidate) && !chain.iter().any(|c| c == candidate.der)
        });
        let Some(next) = next else {
            break;
        };
        chain.push(next.der.clone());
        current = next.clone();
    }
    chain
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    fn ca(
        name: &str,
        issuer: Option<&Issuer<'_, KeyPair>>,
    ) -> (CertificateDer<'static>, Issuer<'static, KeyPair>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = match issuer {
            Some(issuer) => params.signed_by(&key, issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        (cert.der().clone(), Issuer::new(params, key))
    }

    #[test]
    fn the_leaf_is_chained_through_the_intermediate_to_the_root() {
        let (root, root_issuer) = ca("Lab Root", None);
        let (intermediate, intermediate_issuer) = ca("Lab Intermediate", Some(&root_issuer));
        let (_, other_issuer) = ca("Other Root", None);
        let (other, _) = ca("Other Intermediate", Some(&other_issuer));
        let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let leaf = params
            .signed_by(&KeyPair::generate().unwrap(), &intermediate_issuer)
            .unwrap()
            .der()
            .clone();
        let pool = vec![other, root.clone(), intermediate.clone()];
        assert_eq!(
            complete(&leaf, &pool),
            vec![intermediate.clone(), root.clone()]
        );
        // Without the root in the pool, the chain stops at the intermediate.
        assert_eq!(
            complete(&leaf, &pool[..1]),
            Vec::<CertificateDer<'static>>::new()
        );
        assert_eq!(
            complete(&leaf, std::slice::from_ref(&intermediate)),
            vec![intermediate]
        );
        // A self-signed leaf needs nothing; garbage finds nothing.
        assert!(complete(&root, &pool).is_empty());
        assert!(complete(&CertificateDer::from(vec![1, 2, 3]), &pool).is_empty());
    }
}
