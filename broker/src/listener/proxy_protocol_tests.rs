//! Unit tests of the PROXY header reading: parsing by `ppp`, framing over
//! a real loopback socket (nothing after the header is taken), the bounds,
//! and the SSL TLV's trust rules.

use super::*;
use ppp::v2::{Builder, Command, Protocol, Version};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

const SOCKET: &str = "127.0.0.1:40000";

fn v2_header(command: Command, source: &str, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let addresses = (addr(source), addr("127.0.0.1:1883"));
    let mut builder = Builder::with_addresses(Version::Two | command, Protocol::Stream, addresses);
    for (kind, value) in tlvs {
        builder = builder.write_tlv(*kind, value).unwrap();
    }
    builder.build().unwrap()
}

/// A PP2_TYPE_SSL value: client bits, verify, sub-TLVs.
fn ssl_value(client: u8, verify: u32, cn: Option<&str>) -> Vec<u8> {
    let mut value = vec![client];
    value.extend_from_slice(&verify.to_be_bytes());
    let mut sub = |kind: u8, text: &str| {
        value.push(kind);
        value.extend_from_slice(&(text.len() as u16).to_be_bytes());
        value.extend_from_slice(text.as_bytes());
    };
    sub(PP2_SUBTYPE_SSL_VERSION, "TLSv1.3");
    if let Some(cn) = cn {
        sub(PP2_SUBTYPE_SSL_CN, cn);
    }
    value
}

#[test]
fn v1_and_v2_give_the_client_address() {
    let v1 = b"PROXY TCP4 127.0.0.7 127.0.0.1 5000 1883\r\n";
    let proxied = parse(v1, addr(SOCKET), false).unwrap();
    assert_eq!(proxied.client, addr("127.0.0.7:5000"));
    assert_eq!(proxied.version, 1);
    let v1_6 = b"PROXY TCP6 2001:db8::7 ::1 5001 1883\r\n";
    assert_eq!(
        parse(v1_6, addr(SOCKET), false).unwrap().client,
        addr("[2001:db8::7]:5001")
    );
    let v2 = v2_header(Command::Proxy, "127.0.0.7:5002", &[]);
    let proxied = parse(&v2, addr(SOCKET), false).unwrap();
    assert_eq!(proxied.client, addr("127.0.0.7:5002"));
    assert_eq!((proxied.version, proxied.kept_socket_address), (2, false));
}

#[test]
fn local_and_unknown_keep_the_socket_address() {
    let local = v2_header(Command::Local, "127.0.0.7:5002", &[]);
    let proxied = parse(&local, addr(SOCKET), false).unwrap();
    assert_eq!(proxied.client, addr(SOCKET));
    assert!(proxied.kept_socket_address);
    let unknown = parse(b"PROXY UNKNOWN\r\n", addr(SOCKET), false).unwrap();
    assert_eq!(unknown.client, addr(SOCKET));
    assert!(unknown.kept_socket_address);
}

#[test]
fn malformed_headers_are_refused() {
    for bad in [
        &b"PROXY TCP4 127.0.0.999 127.0.0.1 5000 1883\r\n"[..],
        b"PROXY TCP4 127.0.0.7 127.0.0.1 99999 1883\r\n",
        b"PROXY UDP4 127.0.0.7 127.0.0.1 5000 1883\r\n",
    ] {
        assert!(
            matches!(
                parse(bad, addr(SOCKET), false),
                Err(HeaderError::Malformed(_))
            ),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let mut v2 = v2_header(Command::Proxy, "127.0.0.7:5002", &[]);
    v2[12] = 0x31; // version 3
    assert!(matches!(
        parse(&v2, addr(SOCKET), false),
        Err(HeaderError::Malformed(_))
    ));
}

#[test]
fn the_ssl_tlv_names_a_client_only_when_verified_and_asked_for() {
    let verified = ssl_value(PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 0, Some("device-7"));
    let header = v2_header(
        Command::Proxy,
        "127.0.0.7:5002",
        &[(PP2_TYPE_SSL, &verified)],
    );
    let tls = parse(&header, addr(SOCKET), true).unwrap().tls.unwrap();
    assert_eq!(tls.auth, AuthMode::Mutual);
    assert_eq!(tls.version, "TLSv1.3");
    assert_eq!(tls.client_cert.unwrap().cn.as_deref(), Some("device-7"));
    // The listener did not ask: ignored.
    assert_eq!(parse(&header, addr(SOCKET), false).unwrap().tls, None);
    // Failed verification, or no certificate presented: no identity.
    for value in [
        ssl_value(PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 1, Some("device-7")),
        ssl_value(PP2_CLIENT_SSL, 0, Some("device-7")),
    ] {
        let header = v2_header(Command::Proxy, "127.0.0.7:5002", &[(PP2_TYPE_SSL, &value)]);
        let tls = parse(&header, addr(SOCKET), true).unwrap().tls.unwrap();
        assert_eq!(tls.auth, AuthMode::OneWay);
        assert!(tls.client_cert.is_none());
    }
    // Truncated SSL value.
    let header = v2_header(Command::Proxy, "127.0.0.7:5002", &[(PP2_TYPE_SSL, &[1, 0])]);
    assert!(matches!(
        parse(&header, addr(SOCKET), true),
        Err(HeaderError::Malformed(_))
    ));
}

/// Sends `bytes` (then `after`) to a listener and reads the header there.
async fn over_socket(
    bytes: &[u8],
    after: &[u8],
    expected: ProxyProtocol,
) -> (Result<Proxied, HeaderError>, Vec<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let mut all = bytes.to_vec();
    all.extend_from_slice(after);
    client.write_all(&all).await.unwrap();
    let (mut server, peer) = listener.accept().await.unwrap();
    let settings = ListenerConfig {
        proxy_protocol: expected,
        ..ListenerConfig::default()
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let result = read_header(&mut server, peer, &settings, deadline).await;
    let mut rest = vec![0u8; after.len()];
    if result.is_ok() {
        server.read_exact(&mut rest).await.unwrap();
    }
    (result, rest)
}

#[tokio::test]
async fn nothing_after_the_header_is_taken() {
    let mqtt = [0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0];
    let v1 = b"PROXY TCP4 127.0.0.7 127.0.0.1 5000 1883\r\n";
    let (result, rest) = over_socket(v1, &mqtt, ProxyProtocol::Any).await;
    assert_eq!(result.unwrap().client, addr("127.0.0.7:5000"));
    assert_eq!(rest, mqtt);
    let v2 = v2_header(Command::Proxy, "127.0.0.7:5002", &[(0x04, b"noop")]);
    let (result, rest) = over_socket(&v2, &mqtt, ProxyProtocol::V2).await;
    assert_eq!(result.unwrap().client, addr("127.0.0.7:5002"));
    assert_eq!(rest, mqtt);
}

#[tokio::test]
async fn framing_refusals() {
    let mqtt = [0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0];
    let (result, _) = over_socket(&mqtt, &[], ProxyProtocol::Any).await;
    assert_eq!(result, Err(HeaderError::Missing));
    let v1 = b"PROXY TCP4 127.0.0.7 127.0.0.1 5000 1883\r\n";
    let (result, _) = over_socket(v1, &[], ProxyProtocol::V2).await;
    assert!(matches!(
        result,
        Err(HeaderError::WrongVersion { got: 1, .. })
    ));
    let long = [&b"PROXY TCP4 "[..], &[b'1'; 120]].concat();
    let (result, _) = over_socket(&long, &[], ProxyProtocol::V1).await;
    assert_eq!(result, Err(HeaderError::TooLong));
    let mut huge = v2_header(Command::Proxy, "127.0.0.7:5002", &[]);
    huge[14..16].copy_from_slice(&4000u16.to_be_bytes());
    let (result, _) = over_socket(&huge, &[], ProxyProtocol::V2).await;
    assert_eq!(result, Err(HeaderError::TooLong));
    let (result, _) = over_socket(b"PROXY TCP4 127.0", &[], ProxyProtocol::V1).await;
    assert_eq!(result, Err(HeaderError::Timeout));
}

#[test]
fn stray_headers_are_told_from_mqtt_and_tls_first_bytes() {
    let v2 = v2_header(Command::Proxy, "127.0.0.9:4243", &[]);
    assert_eq!(
        stray_header_version(b"PROXY TCP4 127.0.0.9 127.0.0.1 1 2\r\n"),
        Some(1)
    );
    assert_eq!(stray_header_version(b"PROXY"), Some(1));
    assert_eq!(stray_header_version(&v2), Some(2));
    assert_eq!(stray_header_version(&v2[..8]), Some(2));
    // Too little to tell: a byte or two could be anything's.
    assert_eq!(stray_header_version(b"PROX"), None);
    assert_eq!(stray_header_version(&v2[..7]), None);
    assert_eq!(stray_header_version(b""), None);
    // What a good client sends first.
    let connect = [0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02];
    assert_eq!(stray_header_version(&connect), None);
    let client_hello = [0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0];
    assert_eq!(stray_header_version(&client_hello), None);
    // Near misses.
    assert_eq!(stray_header_version(b"PROXX TCP4"), None);
    assert_eq!(stray_header_version(b"\r\n\r\n\0\r\nQUIZ\n"), None);
}
