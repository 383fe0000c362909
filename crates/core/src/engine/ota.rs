//! The engine's end of the OTA seam: where a connection hands a device's
//! status or fetch to the service the broker installed (decision 0163).
//! It only passes the message on; answers come back as ordinary publishes.

use std::sync::Arc;

use super::Engine;
use crate::ota::{DeviceMessage, OtaService};

impl Engine {
    /// Installs the OTA service; false when one is installed already.
    pub fn set_ota_service(&self, service: Arc<dyn OtaService>) -> bool {
        self.ota.set(service).is_ok()
    }

    /// Hands `message` to the service; false when there is none or it is
    /// full.
    pub fn submit_ota(&self, message: DeviceMessage) -> bool {
        self.ota
            .get()
            .is_some_and(|service| service.submit(message))
    }
}
