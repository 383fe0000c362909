//! PROXY protocol headers (`fleetmq::listener::proxy_protocol::parse`,
//! decisions 0123 and 0124): whatever a balancer, or someone posing as
//! one, sends never panics; a header that names no client keeps the
//! socket's address, and the SSL TLV gives a certificate only with a
//! non-empty CN.
#![no_main]

use std::net::SocketAddr;

use fleetmq::listener::proxy_protocol::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let socket = SocketAddr::from(([127, 0, 0, 1], 40000));
    if let Ok(proxied) = parse(data, socket, true) {
        if proxied.kept_socket_address {
            assert_eq!(proxied.client, socket);
        }
        if let Some(cert) = proxied.tls.and_then(|tls| tls.client_cert) {
            assert!(cert.cn.is_some_and(|cn| !cn.is_empty()));
        }
    }
});
