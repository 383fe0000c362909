//! The agent against an in-memory flash and a key of the test's: a full
//! update with a corrupt chunk, confirmation only once online, a refused
//! signature that writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use super::agent::{Agent, Out};
use super::flash::{Layout, MemFlash, OtaFlash};
use super::image;
use super::manifest::hex;
use super::otadata::ImageState;
use super::slots::Slots;

const CHUNK: usize = 512;

fn fresh() -> Slots<MemFlash> {
    let mut slots = Slots::new(MemFlash::new(Layout::SIM.end()), Layout::SIM);
    let factory = image::build(5, "1.0.0", b"factory");
    slots.flash().write(Layout::SIM.slots[0], &factory).unwrap();
    slots.boot().unwrap();
    slots
}

fn offer(key: &SigningKey, image: &[u8], version: &str) -> Vec<u8> {
    let body = format!(
        "fleetmq-ota-manifest-v1\nversion={version}\nchip=esp32c3\nsize={}\nsha256={}\nchunk_size={CHUNK}\n",
        image.len(),
        hex(&Sha256::digest(image))
    );
    format!(
        "{body}signature={}\n",
        hex(&key.sign(body.as_bytes()).to_bytes())
    )
    .into_bytes()
}

fn chunk(image: &[u8], index: usize, version: &str) -> Vec<u8> {
    let data = &image[index * CHUNK..((index + 1) * CHUNK).min(image.len())];
    let mut out = Vec::from((index as u32).to_be_bytes());
    out.push(version.len() as u8);
    out.extend_from_slice(version.as_bytes());
    out.extend_from_slice(&Sha256::digest(data));
    out.extend_from_slice(data);
    out
}

fn statuses(out: &[Out]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Out::Publish { topic, payload } if topic.ends_with("/status") => {
                Some(String::from_utf8(payload.clone()).unwrap())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn an_update_is_fetched_verified_booted_and_confirmed_once_online() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let mut slots = fresh();
    let mut agent = Agent::new("dev", "esp32c3", key.verifying_key());
    agent.fault_corrupt_chunk = Some(1);
    let image = image::build(5, "1.1.0", &[0xA5; 1500]);
    let chunks = image.len().div_ceil(CHUNK);
    let mut out = Vec::new();
    agent.on_offer(&offer(&key, &image, "1.1.0"), &mut slots, 0, &mut out);
    let mut index = 0;
    let mut rejected = 0;
    while !out.contains(&Out::Reset) {
        let before = out.len();
        agent.on_chunk(&chunk(&image, index, "1.1.0"), &mut slots, 0, &mut out);
        if out[before..]
            .iter()
            .any(|o| matches!(o, Out::Log(l) if l.contains("rejected")))
        {
            rejected += 1;
        } else {
            index += 1;
        }
        assert!(index <= chunks, "{out:?}");
    }
    assert_eq!(rejected, 1);
    assert!(
        statuses(&out).iter().any(|s| s.contains("\"verified\"")),
        "{out:?}"
    );
    // Reset: the new slot boots pending; confirmed only online.
    assert_eq!(slots.boot().unwrap().state, Some(ImageState::PendingVerify));
    let mut agent = Agent::new("dev", "esp32c3", key.verifying_key());
    let mut out = Vec::new();
    agent.on_online(&mut slots, 0, &mut out);
    assert!(
        statuses(&out)[0].contains("\"state\":\"running\",\"version\":\"1.1.0\""),
        "{out:?}"
    );
    assert_eq!(slots.running().unwrap().state, Some(ImageState::Valid));
}

#[test]
fn a_manifest_signed_by_another_key_writes_nothing() {
    let trusted = SigningKey::from_bytes(&[3; 32]);
    let other = SigningKey::from_bytes(&[4; 32]);
    let mut slots = fresh();
    let before = slots.flash().0.clone();
    let mut agent = Agent::new("dev", "esp32c3", trusted.verifying_key());
    let image = image::build(5, "1.1.0", b"x");
    let mut out = Vec::new();
    agent.on_offer(&offer(&other, &image, "1.1.0"), &mut slots, 0, &mut out);
    let status = statuses(&out);
    assert!(
        status[0].contains("\"failed\"") && status[0].contains("bad signature"),
        "{status:?}"
    );
    assert!(!out
        .iter()
        .any(|o| matches!(o, Out::Publish { topic, .. } if topic.ends_with("/fetch"))));
    assert_eq!(slots.flash().0, before);
}

#[test]
fn a_download_resumes_after_a_reset_from_the_sector_of_its_next_chunk() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let mut slots = fresh();
    let mut agent = Agent::new("dev", "esp32c3", key.verifying_key());
    let image = image::build(5, "1.1.0", &[0x5A; 7000]);
    let chunks = image.len().div_ceil(CHUNK);
    let mut out = Vec::new();
    agent.on_offer(&offer(&key, &image, "1.1.0"), &mut slots, 0, &mut out);
    for index in 0..10 {
        agent.on_chunk(&chunk(&image, index, "1.1.0"), &mut slots, 0, &mut out);
    }
    // A torn write of chunk 10 when the power went (NOR: bits cleared).
    let at = Layout::SIM.slots[1] + 10 * CHUNK as u32;
    slots.flash().write(at, &[0x00; 100]).unwrap();

    // Reset: a new agent finds the download in flash. Chunk 10 is in the
    // sector starting at 8 * 512 (4096): it resumes at 8, erasing from there.
    drop(agent);
    let mut agent = Agent::new("dev", "esp32c3", key.verifying_key());
    let mut out = Vec::new();
    agent.resume(&mut slots, 0, &mut out);
    assert!(
        out.iter().any(|o| matches!(o, Out::Log(l)
            if l.contains(&format!("resuming 1.1.0 from chunk 8 of {chunks} after a reset")))),
        "{out:?}"
    );
    agent.on_online(&mut slots, 0, &mut out);
    let fetch = out.iter().rev().find_map(|o| match o {
        Out::Publish { topic, payload } if topic.ends_with("/fetch") => Some(payload.clone()),
        _ => None,
    });
    assert_eq!(
        fetch.as_deref(),
        Some(&b"{\"version\":\"1.1.0\",\"chunk\":8}"[..])
    );
    let mut index = 8;
    while !out.contains(&Out::Reset) {
        agent.on_chunk(&chunk(&image, index, "1.1.0"), &mut slots, 0, &mut out);
        index += 1;
        assert!(index <= chunks, "{out:?}");
    }
    assert!(statuses(&out).iter().any(|s| s.contains("\"verified\"")));
    // Done: nothing left to resume.
    let mut again = Agent::new("dev", "esp32c3", key.verifying_key());
    let mut out = Vec::new();
    again.resume(&mut slots, 0, &mut out);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_saved_download_signed_by_another_key_is_not_resumed() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let mut slots = fresh();
    let mut agent = Agent::new("dev", "esp32c3", key.verifying_key());
    let image = image::build(5, "1.1.0", &[0x5A; 3000]);
    let mut out = Vec::new();
    agent.on_offer(&offer(&key, &image, "1.1.0"), &mut slots, 0, &mut out);
    agent.on_chunk(&chunk(&image, 0, "1.1.0"), &mut slots, 0, &mut out);
    // The device now trusts another key (a new image built with it).
    let other = SigningKey::from_bytes(&[4; 32]);
    let mut agent = Agent::new("dev", "esp32c3", other.verifying_key());
    let mut out = Vec::new();
    agent.resume(&mut slots, 0, &mut out);
    agent.on_online(&mut slots, 0, &mut out);
    assert!(statuses(&out)[0].contains("\"state\":\"idle\""), "{out:?}");
}
