//! `fleetmq certs pending|approve|deny`: the operator's side of the
//! provisioning `approval` policy, on the files the broker shares
//! (`<data_dir>/provision`, see `provision::approvals`). The broker needs
//! no signal: a device's next request finds the approval.

use std::path::Path;

use super::CertError;
use crate::provision::approvals::Approvals;

fn approvals(data_dir: &Path) -> Approvals {
    Approvals::new(&data_dir.join("provision"))
}

/// `pending`: one line per waiting request.
pub(super) fn pending(data_dir: &Path) -> Result<(), CertError> {
    let pending = approvals(data_dir).list().map_err(CertError::Provision)?;
    if pending.is_empty() {
        println!("no provisioning request is waiting for approval");
        return Ok(());
    }
    println!("{:<24} {:<22} {:<20} KEY SHA-256", "ID", "REQUESTED", "BY");
    for request in pending {
        println!(
            "{:<24} {:<22} {:<20} {}",
            request.device_id,
            request.requested_at,
            request.requested_by.as_deref().unwrap_or("-"),
            request.key_sha256
        );
    }
    Ok(())
}

/// `approve ID...`.
pub(super) fn approve(data_dir: &Path, ids: &[String]) -> Result<(), CertError> {
    let approvals = approvals(data_dir);
    for id in ids {
        let request = approvals.approve(id).map_err(CertError::Provision)?;
        println!(
            "approved {id} (key {}); it gets its certificate when it asks again",
            request.key_sha256
        );
    }
    Ok(())
}

/// `deny ID...`.
pub(super) fn deny(data_dir: &Path, ids: &[String]) -> Result<(), CertError> {
    let approvals = approvals(data_dir);
    for id in ids {
        approvals.deny(id).map_err(CertError::Provision)?;
        println!("dropped the request of {id}");
    }
    Ok(())
}
