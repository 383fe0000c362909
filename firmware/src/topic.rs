//! Device naming: the MAC address and the topics derived from it.
//!
//! The lab's devices publish to `/this/test/esp32_<last 3 MAC bytes>`, the
//! Mongoose-OS device id (`esp32_807A98`). Templates may use `{mac3}` (the
//! last three bytes, upper-case hex), `{mac}` (all six) and `{client_id}`.

use alloc::string::String;
use core::fmt::{self, Write};

/// A 6-byte station MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The last three bytes in upper-case hex, e.g. `807A98`.
    pub fn suffix(&self) -> String {
        let mut out = String::new();
        for byte in &self.0[3..] {
            let _ = write!(out, "{byte:02X}");
        }
        out
    }

    /// All six bytes in upper-case hex without separators.
    pub fn compact(&self) -> String {
        let mut out = String::new();
        for byte in &self.0 {
            let _ = write!(out, "{byte:02X}");
        }
        out
    }

    /// The MAC `offset` places after this one (wrapping in the last three
    /// bytes): simulated fleets number their devices from one base MAC.
    pub fn offset(&self, offset: u32) -> Mac {
        let low = u32::from_be_bytes([0, self.0[3], self.0[4], self.0[5]]);
        let next = low.wrapping_add(offset) & 0x00FF_FFFF;
        let [_, a, b, c] = next.to_be_bytes();
        Mac([self.0[0], self.0[1], self.0[2], a, b, c])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{g:02X}")
    }
}

/// Topic templates from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplates {
    /// Where `CONNECTED!` goes (`fleetmq.topic`).
    pub connected: String,
    /// Retained `online` / will `offline` (`mqtt.will_topic`).
    pub status: String,
    /// Commands to the device (`fleetmq.command_topic`).
    pub command: String,
    /// The device's answers (`fleetmq.response_topic`).
    pub response: String,
}

/// The concrete names of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNames {
    /// MQTT client id.
    pub client_id: String,
    /// `CONNECTED!` topic.
    pub connected: String,
    /// Status topic (online / offline, retained).
    pub status: String,
    /// Command topic the device subscribes to.
    pub command: String,
    /// Topic of the answers.
    pub response: String,
}

impl DeviceNames {
    /// Fills the templates for the device with `mac`.
    pub fn new(client_id_template: &str, topics: &TopicTemplates, mac: Mac) -> DeviceNames {
        let client_id = expand(client_id_template, mac, "");
        DeviceNames {
            connected: expand(&topics.connected, mac, &client_id),
            status: expand(&topics.status, mac, &client_id),
            command: expand(&topics.command, mac, &client_id),
            response: expand(&topics.response, mac, &client_id),
            client_id,
        }
    }
}

/// Replaces `{mac3}`, `{mac}` and `{client_id}` in `template`.
pub fn expand(template: &str, mac: Mac, client_id: &str) -> String {
    template
        .replace("{mac3}", &mac.suffix())
        .replace("{mac}", &mac.compact())
        .replace("{client_id}", client_id)
}

/// Checks a topic template: no wildcards, no unknown `{placeholder}`.
pub fn check_template(template: &str) -> Result<(), String> {
    if template.is_empty() {
        return Err(String::from("a topic cannot be empty"));
    }
    if template.contains(['+', '#', '\0']) {
        return Err(String::from(
            "a topic to publish or subscribe exactly cannot contain `+`, `#` or NUL",
        ));
    }
    let stripped = template
        .replace("{mac3}", "")
        .replace("{mac}", "")
        .replace("{client_id}", "");
    if stripped.contains(['{', '}']) {
        return Err(String::from(
            "unknown placeholder; use {mac3}, {mac} or {client_id}",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const LAB: Mac = Mac([0x24, 0x0A, 0xC4, 0x80, 0x7A, 0x98]);

    fn templates() -> TopicTemplates {
        TopicTemplates {
            connected: String::from("/this/test/esp32_{mac3}"),
            status: String::from("/this/test/esp32_{mac3}/status"),
            command: String::from("lab/{client_id}/cmd"),
            response: String::from("lab/{mac}/response"),
        }
    }

    #[test]
    fn topic_from_the_last_three_mac_bytes_in_upper_case() {
        let names = DeviceNames::new("esp32_{mac3}", &templates(), LAB);
        assert_eq!(names.client_id, "esp32_807A98");
        assert_eq!(names.connected, "/this/test/esp32_807A98");
        assert_eq!(names.status, "/this/test/esp32_807A98/status");
        assert_eq!(names.command, "lab/esp32_807A98/cmd");
        assert_eq!(names.response, "lab/240AC4807A98/response");
    }

    #[test]
    fn lower_case_hex_digits_are_upper_cased_and_zero_padded() {
        let mac = Mac([0, 0, 0, 0x0a, 0x0b, 0xfe]);
        assert_eq!(mac.suffix(), "0A0BFE");
        assert_eq!(alloc::format!("{mac}"), "00:00:00:0A:0B:FE");
    }

    #[test]
    fn fleet_offsets_carry_and_wrap_in_the_device_part() {
        let mac = Mac([0x24, 0x0A, 0xC4, 0x00, 0x00, 0xFF]);
        assert_eq!(mac.offset(1).suffix(), "000100");
        let top = Mac([0x24, 0x0A, 0xC4, 0xFF, 0xFF, 0xFF]);
        assert_eq!(top.offset(1), Mac([0x24, 0x0A, 0xC4, 0, 0, 0]));
    }

    #[test]
    fn templates_are_checked() {
        assert!(check_template("/this/test/esp32_{mac3}").is_ok());
        assert!(check_template("a/+/b").is_err());
        assert!(check_template("a/#").is_err());
        assert!(check_template("a/{serial}")
            .unwrap_err()
            .contains("unknown placeholder"));
        assert!(check_template("").is_err());
    }
}
