//! The fleetmq.toml loader on hostile text: it may refuse with file/line
//! errors, never panic; what it accepts is a configuration that passes
//! validation and survives a serialize -> load round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = fleetmq_core::config::load_from_str(text, "fuzz.toml") else {
        return;
    };
    let Ok(again) = toml::to_string(&config) else {
        panic!("an accepted configuration does not serialize: {config:?}");
    };
    match fleetmq_core::config::load_from_str(&again, "again.toml") {
        Ok(reloaded) => assert_eq!(reloaded, config, "round trip changed the configuration"),
        Err(error) => panic!("serialized configuration does not load: {error}\n{again}"),
    }
});
