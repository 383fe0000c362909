//! The request and answer documents of the provisioning protocol
//! (docs/provisioning.md): JSON, one request per publish, one answer per
//! request on the device's response topic.

use serde::{Deserialize, Serialize};

/// What a device sends on `$fleetmq/provision/<client-id>/request`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The device id asked for; must equal the client id.
    pub device_id: String,
    /// The PKCS#10 CSR: PEM, or DER in standard base64.
    pub csr: String,
    /// A one-time token (`token` policy).
    #[serde(default)]
    pub token: Option<String>,
}

/// Why a request was not granted: a stable code devices can act on, and a
/// sentence for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// Not JSON of the request's shape.
    MalformedRequest,
    /// `device_id` differs from the client id, or the CSR's CN from both.
    IdMismatch,
    /// The id is outside `id_pattern`, not on the allow-list, or not a
    /// usable name.
    IdNotAllowed,
    /// The CSR is not a PKCS#10 request, or its signature does not verify.
    MalformedCsr,
    /// The CSR asks for something a device certificate must not have
    /// (CA:true, key usages, extended key usages, other names,
    /// extensions).
    ForbiddenRequest,
    /// Not an ECDSA P-256 key.
    UnsupportedKey,
    /// `token` policy: no token, an unknown one, or one bound to another id.
    TokenInvalid,
    /// The token was used before.
    TokenUsed,
    /// The id has a certificate already: renew with it.
    AlreadyProvisioned,
    /// The id's or the presented certificate is revoked.
    Revoked,
    /// Renewal before `renew_before_secs` of the end.
    NotDue,
    /// The presented certificate is not one this CA issued for this id.
    UnknownCertificate,
    /// Too many requests wait for approval.
    TooManyPending,
    /// The listener does not serve provisioning.
    NotOnThisListener,
    /// The CA could not sign or record (the broker's log says why).
    Internal,
}

/// The answer on `$fleetmq/provision/<client-id>/response`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Answer {
    /// The certificate, then the CA certificate, PEM.
    Issued {
        device_id: String,
        chain: String,
        serial: String,
        /// RFC 3339.
        not_after: String,
    },
    /// Waiting for an operator; ask again later with the same key.
    Pending { device_id: String },
    /// Nothing issued.
    Refused {
        device_id: String,
        reason: Refusal,
        detail: String,
    },
}

impl Answer {
    /// A refusal for `device_id`.
    pub fn refused(device_id: &str, reason: Refusal, detail: impl Into<String>) -> Answer {
        Answer::Refused {
            device_id: device_id.to_owned(),
            reason,
            detail: detail.into(),
        }
    }

    /// The metrics label: `issued`, `pending`, or the refusal reason.
    pub fn outcome(&self) -> String {
        match self {
            Answer::Issued { .. } => "issued".to_owned(),
            Answer::Pending { .. } => "pending".to_owned(),
            Answer::Refused { reason, .. } => serde_json::to_string(reason)
                .unwrap_or_default()
                .trim_matches('"')
                .to_owned(),
        }
    }

    /// The JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{\"status\":\"refused\"}".to_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn answers_read_as_documented() {
        let text = Answer::refused("esp32_1", Refusal::TokenUsed, "token used").to_json();
        assert_eq!(
            text,
            r#"{"status":"refused","device_id":"esp32_1","reason":"token-used","detail":"token used"}"#
        );
        let pending = Answer::Pending {
            device_id: "a".into(),
        };
        assert_eq!(pending.to_json(), r#"{"status":"pending","device_id":"a"}"#);
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        assert!(serde_json::from_str::<Request>(r#"{"device_id":"a","csr":"x"}"#).is_ok());
        assert!(
            serde_json::from_str::<Request>(r#"{"device_id":"a","csr":"x","ca":true}"#).is_err()
        );
    }
}
