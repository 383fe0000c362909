//! The mosquitto.conf translator on hostile text: it may refuse (with
//! notes naming lines), never panic; what it accepts renders to TOML that
//! the fleetmq loader reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = fleetmq::mosquitto::looks_like_mosquitto(text);
    if let Ok(translation) = fleetmq::mosquitto::translate_str(text, "fuzz.conf") {
        let toml = translation.to_toml();
        if let Err(error) = fleetmq_core::config::load_from_str(&toml, "translated.toml") {
            panic!("accepted mosquitto.conf renders TOML the loader refuses: {error}\n{toml}");
        }
    }
});
