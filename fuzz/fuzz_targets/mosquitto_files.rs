//! Mosquitto's other files on hostile text: `password_file`
//! (`PasswordFile::parse`) and `acl_file` (`Acl::parse_mosquitto`). They
//! may refuse a file, never panic. A parsed password file refuses a user
//! it does not hold.
#![no_main]

use fleetmq_core::auth::{Acl, PasswordFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = PasswordFile::parse(text, "fuzz.passwd") {
        assert!(file.len() <= text.lines().count());
        let user = "\u{1}no such user\u{1}";
        if !file.contains(user) {
            assert!(!file.verify(user, b"password"));
        }
    }
    let _ = Acl::parse_mosquitto(text, "fuzz.acl");
});
