//! The bytes of the write-ahead log: one frame per group (header with
//! magic, length, LSN and CRC-32, then the group's ops), and the encoding
//! of each [`Op`] inside it. Messages and deliveries use the store's own
//! record layout (`fleetmq_core::store::record`), so the wire codec guards
//! the log as it guards the redb file.
//!
//! It owns the format only; where frames go and what a bad one means is
//! `segment`'s and `recover`'s business.

use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};

use fleetmq_core::store::record::{self, ItemState};
use fleetmq_core::store::{Op, SessionMeta};

/// "FMW1": the start of every frame.
pub const MAGIC: u32 = 0x464D_5731;
/// magic u32, body length u32, LSN u64, CRC-32 u32.
pub const HEADER: usize = 20;
/// Largest body accepted when reading (a group is at most `MAX_GROUP` ops;
/// this only stops a damaged length from allocating gigabytes).
pub const MAX_BODY: usize = 1 << 30;

/// One group as read back.
#[derive(Debug)]
pub struct Group {
    pub lsn: u64,
    pub ops: Vec<Op>,
}

/// Appends a whole frame for `ops` (in order) to `out`.
pub fn put_group<'a>(out: &mut Vec<u8>, lsn: u64, ops: impl Iterator<Item = &'a Op>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER]);
    let mut body = BytesMut::new();
    for op in ops {
        put_op(&mut body, op);
    }
    out.extend_from_slice(&body);
    let len = (out.len() - start - HEADER) as u32;
    out[start..start + 4].copy_from_slice(&MAGIC.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&len.to_be_bytes());
    out[start + 8..start + 16].copy_from_slice(&lsn.to_be_bytes());
    let crc = checksum(&out[start + 4..start + 16], &out[start + HEADER..]);
    out[start + 16..start + 20].copy_from_slice(&crc.to_be_bytes());
}

/// CRC-32 of the length and LSN fields and the body.
fn checksum(fields: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(fields);
    hasher.update(body);
    hasher.finalize()
}

/// What is at the start of `bytes`.
#[derive(Debug)]
pub enum Parsed {
    /// A whole frame whose CRC matches: its LSN, its body, its length.
    Frame { lsn: u64, body: Vec<u8>, len: usize },
    /// Too few bytes for the header or the body it announces.
    Short,
    /// Wrong magic, impossible length or CRC mismatch.
    Bad(&'static str),
}

/// Parses one frame at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parsed {
    if bytes.len() < HEADER {
        return Parsed::Short;
    }
    let word =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if word(0) != MAGIC {
        return Parsed::Bad("no frame marker");
    }
    let len = word(4) as usize;
    if len > MAX_BODY {
        return Parsed::Bad("impossible frame length");
    }
    if bytes.len() < HEADER + len {
        return Parsed::Short;
    }
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&bytes[8..16]);
    let body = &bytes[HEADER..HEADER + len];
    if checksum(&bytes[4..16], body) != word(16) {
        return Parsed::Bad("CRC mismatch");
    }
    Parsed::Frame {
        lsn: u64::from_be_bytes(lsn),
        body: body.to_vec(),
        len: HEADER + len,
    }
}

const RETAIN_SET: u8 = 1;
const RETAIN_CLEAR: u8 = 2;
const SESSION_PUT: u8 = 3;
const SESSION_DELETE: u8 = 4;
const ITEM_PUT: u8 = 5;
const ITEM_STATE: u8 = 6;
const ITEM_REMOVE: u8 = 7;
const INCOMING_ADD: u8 = 8;
const INCOMING_REMOVE: u8 = 9;
const WILL_PUT: u8 = 10;
const WILL_CLEAR: u8 = 11;
const BATCH: u8 = 12;

/// Appends one op. An op the redb tables would skip (no sequence number,
/// a record that cannot be encoded: the applier logs those) is left out,
/// so replaying the log applies exactly what a direct commit would.
fn put_op(out: &mut BytesMut, op: &Op) {
    let mark = out.len();
    if put_op_fallible(out, op).is_none() {
        out.truncate(mark);
    }
}

fn put_op_fallible(out: &mut BytesMut, op: &Op) -> Option<()> {
    match op {
        Op::RetainSet(message) => {
            out.put_u8(RETAIN_SET);
            put_blob(out, |b| record::put_message(b, message).ok())?;
        }
        Op::RetainClear(topic) => {
            out.put_u8(RETAIN_CLEAR);
            put_str(out, topic)?;
        }
        Op::SessionPut(client, meta) => {
            out.put_u8(SESSION_PUT);
            put_str(out, client)?;
            let json = serde_json::to_vec(meta).ok()?;
            put_blob(out, |b| {
                b.put_slice(&json);
                Some(())
            })?;
        }
        Op::SessionDelete(client) => {
            out.put_u8(SESSION_DELETE);
            put_str(out, client)?;
        }
        Op::ItemPut(client, item) => {
            let seq = item.seq?;
            out.put_u8(ITEM_PUT);
            put_str(out, client)?;
            out.put_u64(seq);
            put_blob(out, |b| record::put_item(b, item, ItemState::Queued).ok())?;
        }
        Op::ItemState(client, seq, item, state) => {
            out.put_u8(ITEM_STATE);
            put_str(out, client)?;
            out.put_u64(*seq);
            put_blob(out, |b| record::put_item(b, item, *state).ok())?;
        }
        Op::ItemRemove(client, seq) => {
            out.put_u8(ITEM_REMOVE);
            put_str(out, client)?;
            out.put_u64(*seq);
        }
        Op::IncomingAdd(client, id) | Op::IncomingRemove(client, id) => {
            let tag = if matches!(op, Op::IncomingAdd(..)) {
                INCOMING_ADD
            } else {
                INCOMING_REMOVE
            };
            out.put_u8(tag);
            put_str(out, client)?;
            out.put_u16(*id);
        }
        Op::WillPut(client, message, publish_at_ms) => {
            out.put_u8(WILL_PUT);
            put_str(out, client)?;
            out.put_u64(*publish_at_ms);
            put_blob(out, |b| record::put_message(b, message).ok())?;
        }
        Op::WillClear(client) => {
            out.put_u8(WILL_CLEAR);
            put_str(out, client)?;
        }
        Op::Batch(ops) => {
            out.put_u8(BATCH);
            let count_at = out.len();
            out.put_u32(0);
            let mut count = 0u32;
            for op in ops {
                let before = out.len();
                put_op(out, op);
                if out.len() > before {
                    count += 1;
                }
            }
            out[count_at..count_at + 4].copy_from_slice(&count.to_be_bytes());
        }
    }
    Some(())
}

fn put_str(out: &mut BytesMut, text: &str) -> Option<()> {
    out.put_u16(u16::try_from(text.len()).ok()?);
    out.put_slice(text.as_bytes());
    Some(())
}

/// A u32 length, then what `fill` writes.
fn put_blob(out: &mut BytesMut, fill: impl FnOnce(&mut BytesMut) -> Option<()>) -> Option<()> {
    let at = out.len();
    out.put_u32(0);
    fill(out)?;
    let len = u32::try_from(out.len() - at - 4).ok()?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Some(())
}

/// Decodes a frame's body back into its ops.
pub fn get_ops(body: &[u8]) -> Result<Vec<Op>, String> {
    let mut bytes = body;
    let mut ops = Vec::new();
    while bytes.has_remaining() {
        ops.push(get_op(&mut bytes)?);
    }
    Ok(ops)
}

fn short() -> String {
    "op truncated".into()
}

fn get_op(bytes: &mut &[u8]) -> Result<Op, String> {
    if !bytes.has_remaining() {
        return Err(short());
    }
    let op = match bytes.get_u8() {
        RETAIN_SET => Op::RetainSet(Arc::new(get_message(bytes)?)),
        RETAIN_CLEAR => Op::RetainClear(get_str(bytes)?),
        SESSION_PUT => {
            let client = get_str(bytes)?;
            let json = get_blob(bytes)?;
            let meta: SessionMeta = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
            Op::SessionPut(client, meta)
        }
        SESSION_DELETE => Op::SessionDelete(get_str(bytes)?),
        ITEM_PUT => {
            let client = get_str(bytes)?;
            let seq = get_u64(bytes)?;
            let (item, _) = get_item(bytes, seq)?;
            Op::ItemPut(client, item)
        }
        ITEM_STATE => {
            let client = get_str(bytes)?;
            let seq = get_u64(bytes)?;
            let (item, state) = get_item(bytes, seq)?;
            Op::ItemState(client, seq, item, state)
        }
        ITEM_REMOVE => {
            let client = get_str(bytes)?;
            Op::ItemRemove(client, get_u64(bytes)?)
        }
        INCOMING_ADD => {
            let client = get_str(bytes)?;
            Op::IncomingAdd(client, get_u16(bytes)?)
        }
        INCOMING_REMOVE => {
            let client = get_str(bytes)?;
            Op::IncomingRemove(client, get_u16(bytes)?)
        }
        WILL_PUT => {
            let client = get_str(bytes)?;
            let at = get_u64(bytes)?;
            Op::WillPut(client, Arc::new(get_message(bytes)?), at)
        }
        WILL_CLEAR => Op::WillClear(get_str(bytes)?),
        BATCH => {
            if bytes.remaining() < 4 {
                return Err(short());
            }
            let count = bytes.get_u32();
            let mut ops = Vec::new();
            for _ in 0..count {
                ops.push(get_op(bytes)?);
            }
            Op::Batch(ops)
        }
        other => return Err(format!("unknown op {other}")),
    };
    Ok(op)
}

fn get_u64(bytes: &mut &[u8]) -> Result<u64, String> {
    if bytes.remaining() < 8 {
        return Err(short());
    }
    Ok(bytes.get_u64())
}

fn get_u16(bytes: &mut &[u8]) -> Result<u16, String> {
    if bytes.remaining() < 2 {
        return Err(short());
    }
    Ok(bytes.get_u16())
}

fn get_str(bytes: &mut &[u8]) -> Result<Arc<str>, String> {
    let len = usize::from(get_u16(bytes)?);
    if bytes.remaining() < len {
        return Err(short());
    }
    let text = std::str::from_utf8(&bytes[..len]).map_err(|_| "name is not UTF-8".to_string())?;
    let text = Arc::from(text);
    bytes.advance(len);
    Ok(text)
}

fn get_blob(bytes: &mut &[u8]) -> Result<BytesMut, String> {
    if bytes.remaining() < 4 {
        return Err(short());
    }
    let len = bytes.get_u32() as usize;
    if bytes.remaining() < len {
        return Err(short());
    }
    let blob = BytesMut::from(&bytes[..len]);
    bytes.advance(len);
    Ok(blob)
}

fn get_message(bytes: &mut &[u8]) -> Result<fleetmq_core::message::Message, String> {
    let mut blob = get_blob(bytes)?;
    record::get_message(&mut blob).map_err(|e| e.to_string())
}

fn get_item(
    bytes: &mut &[u8],
    seq: u64,
) -> Result<(fleetmq_core::message::Queued, ItemState), String> {
    let mut blob = get_blob(bytes)?;
    record::get_item(&mut blob, seq).map_err(|e| e.to_string())
}
