//! The engine's end of the provisioning seam: where a connection hands a
//! request to the service the broker installed (decision 0150). It only
//! passes the request on; answers come back as ordinary publishes.

use std::sync::Arc;

use super::Engine;
use crate::provision::{ProvisionRequest, ProvisionService};

impl Engine {
    /// Installs the provisioning service; false when one is installed
    /// already (the first stays).
    pub fn set_provision_service(&self, service: Arc<dyn ProvisionService>) -> bool {
        self.provision.set(service).is_ok()
    }

    /// Hands `request` to the service; false when there is none or it is
    /// full.
    pub fn submit_provision(&self, request: ProvisionRequest) -> bool {
        self.provision
            .get()
            .is_some_and(|service| service.submit(request))
    }
}
