//! [`TlsStream`] against tokio-rustls clients over real loopback sockets.

use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

struct Pki {
    server: Arc<ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn pki(version: &'static rustls::SupportedProtocolVersion) -> Pki {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["broker.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = CertificateDer::from(cert.der().to_vec());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Pki {
        server: Arc::new(server),
        client: Arc::new(client),
    }
}

type Client = tokio_rustls::client::TlsStream<TcpStream>;

/// A finished handshake: the server's [`TlsStream`] and the client.
async fn pair(pki: &Pki) -> (TlsStream, Client) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&pki.client));
    let client = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("broker.test").unwrap();
        connector.connect(name, tcp).await.unwrap()
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let mut socket = SlotStream::new(tcp);
    let mut incoming = Vec::new();
    let hello = TlsStream::read_client_hello(&mut socket, &mut incoming, |_| false)
        .await
        .unwrap();
    assert_eq!(hello.server_name.as_deref(), Some("broker.test"));
    let mut server = TlsStream::new(socket, Arc::clone(&pki.server), incoming)
        .ok()
        .unwrap();
    server.process().unwrap();
    std::future::poll_fn(|cx| server.poll_handshake(cx))
        .await
        .unwrap();
    (server, client.await.unwrap())
}

fn versions() -> [&'static rustls::SupportedProtocolVersion; 2] {
    [&rustls::version::TLS12, &rustls::version::TLS13]
}

/// Large writes both ways arrive whole and in order, read through a small
/// buffer (as a quiet MQTT connection reads), and a close_notify ends the
/// server's reads cleanly.
#[tokio::test]
async fn data_crosses_both_ways_and_close_notify_ends_reads() {
    for version in versions() {
        let pki = pki(version);
        let (mut server, mut client) = pair(&pki).await;
        let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let to_server = sent.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&to_server).await.unwrap();
            client.flush().await.unwrap();
            let mut back = vec![0u8; 100_000];
            client.read_exact(&mut back).await.unwrap();
            client.shutdown().await.unwrap();
            back
        });
        let mut received = Vec::new();
        let mut small = [0u8; 256];
        while received.len() < sent.len() {
            let n = server.read(&mut small).await.unwrap();
            assert!(n > 0, "early end of file");
            received.extend_from_slice(&small[..n]);
        }
        assert_eq!(received, sent, "{version:?}");
        server.write_all(&received).await.unwrap();
        server.flush().await.unwrap();
        assert_eq!(writer.await.unwrap(), sent, "{version:?}");
        // The client's close_notify: a clean end of file.
        assert_eq!(server.read(&mut small).await.unwrap(), 0, "{version:?}");
        assert!(server.peer_closed);
    }
}

/// Between messages the connection owns no TLS buffer (issue 22: memory
/// per held connection).
#[tokio::test]
async fn an_idle_connection_owns_no_buffers() {
    for version in versions() {
        let pki = pki(version);
        let (mut server, mut client) = pair(&pki).await;
        client.write_all(b"ping").await.unwrap();
        client.flush().await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(b"pong").await.unwrap();
        server.flush().await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        assert_eq!(
            (
                server.incoming.capacity(),
                server.plain.capacity(),
                server.outgoing.capacity()
            ),
            (0, 0, 0),
            "{version:?}"
        );
    }
}

/// A socket closed without close_notify is an error, as with tokio-rustls
/// (a truncation attack looks like this).
#[tokio::test]
async fn a_close_without_close_notify_is_unexpected_eof() {
    for version in versions() {
        let pki = pki(version);
        let (mut server, client) = pair(&pki).await;
        let (mut tcp, _) = client.into_inner();
        // A FIN (a close with unread session tickets would be a reset).
        tcp.shutdown().await.unwrap();
        let mut buf = [0u8; 16];
        let error = server.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{version:?}");
    }
}

/// A forged record fails the read with the rustls error inside, the peer
/// gets rustls's alert, and the connection refuses further use.
#[tokio::test]
async fn a_forged_record_is_refused_with_an_alert() {
    for version in versions() {
        let pki = pki(version);
        let (mut server, client) = pair(&pki).await;
        let (mut tcp, _) = client.into_inner();
        let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x40];
        forged.extend_from_slice(&[0x5a; 0x40]);
        tcp.write_all(&forged).await.unwrap();
        let mut buf = [0u8; 16];
        let error = server.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{version:?}");
        let inner = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        assert!(
            matches!(inner, Some(rustls::Error::DecryptError)),
            "{version:?}: {error:?}"
        );
        // The alert (an encrypted record: content type 0x15 in TLS 1.2,
        // disguised as application data in TLS 1.3).
        let mut alert = [0u8; 5];
        tcp.read_exact(&mut alert).await.unwrap();
        assert!(alert[0] == 0x15 || alert[0] == 0x17, "{alert:?}");
        assert!(server.write(b"more").await.is_err());
    }
}

/// Shutting down sends close_notify: the client's read ends cleanly.
#[tokio::test]
async fn shutdown_sends_close_notify() {
    for version in versions() {
        let pki = pki(version);
        let (mut server, mut client) = pair(&pki).await;
        server.write_all(b"bye").await.unwrap();
        server.shutdown().await.unwrap();
        let mut all = Vec::new();
        client.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"bye", "{version:?}");
    }
}

/// Bytes that are not a ClientHello are refused before any connection
/// exists, with rustls's reason.
#[tokio::test]
async fn a_broken_client_hello_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer).await;
        answer
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let mut socket = SlotStream::new(tcp);
    let mut incoming = Vec::new();
    let error = TlsStream::read_client_hello(&mut socket, &mut incoming, |_| false)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    drop(socket);
    let answer = peer.await.unwrap();
    // A TLS alert record, or nothing when rustls has none for this.
    assert!(answer.is_empty() || answer[0] == 0x15, "{answer:?}");
}
