//! Mosquitto's persistence file (`mosquitto.db`, format versions 5 and 6:
//! Mosquitto 1.6 and 2.0) read into records, strictly.
//!
//! The file is a 15-byte magic, a CRC field (always 0), the format version
//! (big-endian u32), then chunks: a big-endian type and length, and a body
//! of exactly that length. A body is a fixed C struct written as it lies in
//! memory (padding included; its 16-bit and 32-bit lengths big-endian, its
//! 64-bit ids and times in the writer's byte order, taken as little-endian:
//! every Debian and Raspberry Pi OS port Mosquitto runs on is), followed by
//! the strings, payload and MQTT 5.0 properties the struct announces.
//!
//! Every length is checked against the chunk and the chunk against the
//! file before anything is read, so any input gives records or a
//! [`ReadError`] naming the offset and the chunk type, never a panic or an
//! allocation larger than the file. This module only splits bytes into
//! records; what they mean for fleetmq is `plan`'s business.

use bytes::Bytes;

/// The first 15 bytes of every Mosquitto persistence file.
pub const MAGIC: [u8; 15] = *b"\x00\xB5\x00mosquitto db";

const CHUNK_CFG: u32 = 1;
const CHUNK_BASE_MSG: u32 = 2;
const CHUNK_CLIENT_MSG: u32 = 3;
const CHUNK_RETAIN: u32 = 4;
const CHUNK_SUB: u32 = 5;
const CHUNK_CLIENT: u32 = 6;

/// Sizes of the fixed parts that end in padding (`sizeof` of Mosquitto's
/// `PF_*` structs; the others end without any: 32 bytes for a stored
/// message, 16 for a client message, 16 for a format-5 client).
const CFG_LEN: usize = 16;
const RETAIN_LEN: usize = 8;
const SUB_LEN: usize = 12;
const CLIENT_LEN_V6: usize = 24;

/// Why the file could not be read; `offset` is where the chunk (or the
/// field, for the header) starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("offset {offset} ({chunk}): {detail}")]
pub struct ReadError {
    pub offset: usize,
    pub chunk: &'static str,
    pub detail: String,
}

/// A stored message (`DB_CHUNK_MSG_STORE`), referred to by its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseMsg {
    pub offset: usize,
    pub store_id: u64,
    /// Absolute expiry, seconds since the epoch; 0: none.
    pub expiry_time: i64,
    pub source_id: Bytes,
    pub source_username: Bytes,
    pub topic: Bytes,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5.0 PUBLISH properties, with their variable-length prefix
    /// (empty when there are none).
    pub properties: Bytes,
}

/// A message in a client's queue or in flight (`DB_CHUNK_CLIENT_MSG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMsg {
    pub offset: usize,
    pub store_id: u64,
    pub mid: u16,
    pub client_id: Bytes,
    pub qos: u8,
    /// Mosquitto's `mosq_ms_*` message state.
    pub state: u8,
    pub retain: bool,
    pub dup: bool,
    /// Mosquitto's `mosq_md_*`: 0 incoming, 1 outgoing.
    pub direction: u8,
    /// Properties as stored (a subscription identifier at most).
    pub properties: Bytes,
}

/// A persistent session (`DB_CHUNK_CLIENT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub offset: usize,
    /// When the session expires, seconds since the epoch; 0: not counting.
    pub session_expiry_time: i64,
    /// Session Expiry Interval in seconds (`u32::MAX`: never).
    pub session_expiry_interval: u32,
    pub last_mid: u16,
    pub client_id: Bytes,
    /// The bytes stored as the username (format 6 only); not trustworthy,
    /// see `plan`.
    pub username: Bytes,
    pub listener_port: u16,
}

/// A subscription of a persistent session (`DB_CHUNK_SUB`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRecord {
    pub offset: usize,
    /// Subscription identifier (0: none).
    pub identifier: u32,
    pub client_id: Bytes,
    pub topic: Bytes,
    pub qos: u8,
    /// SUBSCRIBE option bits other than QoS (no local, retain as
    /// published, retain handling), as on the wire.
    pub options: u8,
}

/// Everything in a persistence file, in file order per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MosquittoDb {
    pub version: u32,
    pub last_db_id: u64,
    pub base_msgs: Vec<BaseMsg>,
    pub client_msgs: Vec<ClientMsg>,
    /// Store ids of retained messages, with the chunk offset.
    pub retained: Vec<(usize, u64)>,
    pub subscriptions: Vec<SubRecord>,
    pub clients: Vec<ClientRecord>,
}

fn chunk_name(kind: u32) -> &'static str {
    match kind {
        CHUNK_CFG => "CFG chunk",
        CHUNK_BASE_MSG => "MSG_STORE chunk",
        CHUNK_CLIENT_MSG => "CLIENT_MSG chunk",
        CHUNK_RETAIN => "RETAIN chunk",
        CHUNK_SUB => "SUB chunk",
        CHUNK_CLIENT => "CLIENT chunk",
        _ => "unknown chunk",
    }
}

/// A bounded reader over one chunk body (or the file header).
struct Body<'a> {
    bytes: &'a Bytes,
    /// Absolute position of the next byte.
    pos: usize,
    end: usize,
    start: usize,
    chunk: &'static str,
}

impl<'a> Body<'a> {
    fn error(&self, detail: impl Into<String>) -> ReadError {
        ReadError {
            offset: self.start,
            chunk: self.chunk,
            detail: detail.into(),
        }
    }

    fn left(&self) -> usize {
        self.end - self.pos
    }

    fn take(&mut self, len: usize, what: &str) -> Result<Bytes, ReadError> {
        if len > self.left() {
            return Err(self.error(format!(
                "{what} needs {len} bytes, the chunk has {} left",
                self.left()
            )));
        }
        let out = self.bytes.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ReadError> {
        let taken = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&taken);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ReadError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn be16(&mut self, what: &str) -> Result<u16, ReadError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    fn be32(&mut self, what: &str) -> Result<u32, ReadError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    /// A 64-bit field Mosquitto writes in host order.
    fn host64(&mut self, what: &str) -> Result<u64, ReadError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn skip(&mut self, len: usize, what: &str) -> Result<(), ReadError> {
        self.take(len, what).map(|_| ())
    }
    fn rest(&mut self) -> Bytes {
        let out = self.bytes.slice(self.pos..self.end);
        self.pos = self.end;
        out
    }
    fn done(&self) -> Result<(), ReadError> {
        if self.left() != 0 {
            return Err(self.error(format!("{} bytes left over after the record", self.left())));
        }
        Ok(())
    }
}

/// Reads a whole persistence file.
pub fn read(bytes: Bytes) -> Result<MosquittoDb, ReadError> {
    let mut header = Body {
        bytes: &bytes,
        pos: 0,
        end: bytes.len(),
        start: 0,
        chunk: "file header",
    };
    let magic = header
        .take(MAGIC.len(), "the magic")
        .map_err(|_| header.error("too short for a Mosquitto persistence file"))?;
    if magic[..] != MAGIC[..] {
        return Err(header.error("not a Mosquitto persistence file (wrong magic)"));
    }
    header.start = header.pos;
    header.skip(4, "the CRC field")?;
    header.start = header.pos;
    let version = header.be32("the format version")?;
    if version != 5 && version != 6 {
        return Err(header.error(format!(
            "format version {version} is not supported (Mosquitto 1.6 writes 5, 2.0 writes 6; \
             start that Mosquitto once on the file to rewrite it)"
        )));
    }
    let mut db = MosquittoDb {
        version,
        ..MosquittoDb::default()
    };
    let mut pos = header.pos;
    let mut seen_cfg = false;
    while pos < bytes.len() {
        let start = pos;
        let mut chunk_header = Body {
            bytes: &bytes,
            pos,
            end: bytes.len(),
            start,
            chunk: "chunk header",
        };
        let kind = chunk_header.be32("the chunk type")?;
        let len = chunk_header.be32("the chunk length")?;
        let chunk = chunk_name(kind);
        let body_start = chunk_header.pos;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > bytes.len() - body_start {
            return Err(ReadError {
                offset: start,
                chunk,
                detail: format!(
                    "the chunk says {len} bytes, the file has {} left (truncated?)",
                    bytes.len() - body_start
                ),
            });
        }
        let mut body = Body {
            bytes: &bytes,
            pos: body_start,
            end: body_start + len,
            start,
            chunk,
        };
        match kind {
            CHUNK_CFG => {
                if len != CFG_LEN {
                    return Err(body.error(format!("{len} bytes, expected {CFG_LEN}")));
                }
                db.last_db_id = body.host64("last_db_id")?;
                let _shutdown = body.u8("shutdown")?;
                let dbid_size = body.u8("dbid_size")?;
                if dbid_size != 8 {
                    return Err(body.error(format!(
                        "message ids of {dbid_size} bytes are not supported (8 expected)"
                    )));
                }
                body.skip(6, "padding")?;
                seen_cfg = true;
            }
            CHUNK_BASE_MSG => db.base_msgs.push(read_base_msg(&mut body)?),
            CHUNK_CLIENT_MSG => db.client_msgs.push(read_client_msg(&mut body)?),
            CHUNK_RETAIN => {
                if len != RETAIN_LEN {
                    return Err(body.error(format!("{len} bytes, expected {RETAIN_LEN}")));
                }
                db.retained.push((start, body.host64("store_id")?));
            }
            CHUNK_SUB => db.subscriptions.push(read_sub(&mut body)?),
            CHUNK_CLIENT => db.clients.push(read_client(&mut body, version)?),
            other => {
                // Mosquitto skips those with a warning; an import that
                // skipped state it does not understand would be a partial one.
                return Err(body.error(format!(
                    "chunk type {other} is unknown (1 to 6 are); nothing can be imported from a \
                     file fleetmq does not fully understand"
                )));
            }
        }
        body.done()?;
        pos = body.end;
    }
    if !seen_cfg {
        return Err(ReadError {
            offset: bytes.len(),
            chunk: "end of file",
            detail: "no CFG chunk: the file is incomplete".into(),
        });
    }
    Ok(db)
}

fn read_base_msg(body: &mut Body<'_>) -> Result<BaseMsg, ReadError> {
    let offset = body.start;
    let store_id = body.host64("store_id")?;
    let expiry_time = body.host64("expiry_time")? as i64;
    let payload_len = body.be32("payloadlen")?;
    let _source_mid = body.be16("source_mid")?;
    let source_id_len = body.be16("source_id_len")?;
    let source_username_len = body.be16("source_username_len")?;
    let topic_len = body.be16("topic_len")?;
    let _source_port = body.be16("source_port")?;
    let qos = body.u8("qos")?;
    let retain = body.u8("retain")?;
    if qos > 2 {
        return Err(body.error(format!("QoS {qos}")));
    }
    let source_id = body.take(source_id_len.into(), "the source client id")?;
    let source_username = body.take(source_username_len.into(), "the source username")?;
    let topic = body.take(topic_len.into(), "the topic")?;
    let payload_len = usize::try_from(payload_len).unwrap_or(usize::MAX);
    let payload = body.take(payload_len, "the payload")?;
    let properties = body.rest();
    Ok(BaseMsg {
        offset,
        store_id,
        expiry_time,
        source_id,
        source_username,
        topic,
        payload,
        qos,
        retain: retain != 0,
        properties,
    })
}

fn read_client_msg(body: &mut Body<'_>) -> Result<ClientMsg, ReadError> {
    let offset = body.start;
    let store_id = body.host64("store_id")?;
    let mid = body.be16("mid")?;
    let id_len = body.be16("id_len")?;
    let qos = body.u8("qos")?;
    let state = body.u8("state")?;
    let retain_dup = body.u8("retain_dup")?;
    let direction = body.u8("direction")?;
    if qos > 2 {
        return Err(body.error(format!("QoS {qos}")));
    }
    if direction > 1 {
        return Err(body.error(format!("direction {direction}")));
    }
    let client_id = body.take(id_len.into(), "the client id")?;
    let properties = body.rest();
    Ok(ClientMsg {
        offset,
        store_id,
        mid,
        client_id,
        qos,
        state,
        retain: retain_dup & 0xF0 != 0,
        dup: retain_dup & 0x0F != 0,
        direction,
        properties,
    })
}

fn read_sub(body: &mut Body<'_>) -> Result<SubRecord, ReadError> {
    let offset = body.start;
    let identifier = body.be32("identifier")?;
    let id_len = body.be16("id_len")?;
    let topic_len = body.be16("topic_len")?;
    let qos = body.u8("qos")?;
    let options = body.u8("options")?;
    body.skip(SUB_LEN - 10, "padding")?;
    if qos > 2 {
        return Err(body.error(format!("QoS {qos}")));
    }
    let client_id = body.take(id_len.into(), "the client id")?;
    let topic = body.take(topic_len.into(), "the topic filter")?;
    Ok(SubRecord {
        offset,
        identifier,
        client_id,
        topic,
        qos,
        options,
    })
}

fn read_client(body: &mut Body<'_>, version: u32) -> Result<ClientRecord, ReadError> {
    let offset = body.start;
    let session_expiry_time = body.host64("session_expiry_time")? as i64;
    let session_expiry_interval = body.be32("session_expiry_interval")?;
    let last_mid = body.be16("last_mid")?;
    let id_len = body.be16("id_len")?;
    let (listener_port, username_len) = if version == 6 {
        let port = body.be16("listener_port")?;
        let username_len = body.be16("username_len")?;
        body.skip(CLIENT_LEN_V6 - 20, "padding")?;
        (port, username_len)
    } else {
        (0, 0)
    };
    let client_id = body.take(id_len.into(), "the client id")?;
    let username = body.take(username_len.into(), "the username")?;
    Ok(ClientRecord {
        offset,
        session_expiry_time,
        session_expiry_interval,
        last_mid,
        client_id,
        username,
        listener_port,
    })
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
