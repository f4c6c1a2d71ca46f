//! The PROXY protocol (HAProxy's, v1 text and v2 binary): a load balancer
//! that forwards TCP (AWS NLB, HAProxy in `mode tcp`, ...) opens each
//! connection with a header naming the client's address.
//!
//! Only peers in `client_ip.proxy_protocol` are read this way, and from them
//! the header is required: a connection from such a peer without a valid
//! header is closed, and a connection from anyone else is never parsed for
//! one (otherwise any client could claim any address). The source address of
//! the header replaces the connection's peer address in Pingora's socket
//! digest, so everything downstream (`client_ip.trusted_proxies`, IP rules,
//! rate limits, bans, logs) sees the client. `LOCAL` headers (the balancer's
//! own health checks) and `UNKNOWN`/non-TCP families keep the balancer's
//! address.
//!
//! Plain HTTP connections are handled by [`ProxyProtocolApp`], which wraps
//! the HTTP proxy application; TLS connections by [`PreTlsHeader`], which
//! Pingora runs before the handshake (the header precedes the ClientHello).
//! The format is small and fixed, so it is parsed here rather than through a
//! dependency; reads are exact (nothing after the header is consumed) and
//! bounded in size and time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::SocketDigest;
use pingora::protocols::{GetSocketDigest, Stream, UniqueID};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::snapshot::SnapshotStore;

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 header, CRLF included (from the specification).
const V1_MAX: usize = 107;
/// How long a balancer may take to send the header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("connection closed before a PROXY header")]
    Closed,
    #[error("no PROXY protocol header")]
    Missing,
    #[error("malformed PROXY v1 header: {0}")]
    V1(&'static str),
    #[error("malformed PROXY v2 header: {0}")]
    V2(&'static str),
    #[error("PROXY header not received within {0:?}")]
    Timeout(Duration),
}

/// Reads one PROXY header (v1 or v2) and nothing after it. `Ok(None)`: a
/// valid header without a usable client address (`LOCAL`, `UNKNOWN`, a
/// non-TCP family).
pub async fn read_header<R: AsyncRead + Unpin + ?Sized>(
    io: &mut R,
) -> Result<Option<SocketAddr>, HeaderError> {
    let mut start = [0u8; 8];
    read_exact(io, &mut start).await?;
    if &start[..6] == b"PROXY " {
        let mut line = start.to_vec();
        // Byte by byte: the request that follows must stay unread (the
        // stream is buffered, so this costs no system calls).
        while !line.ends_with(b"\r\n") {
            if line.len() == V1_MAX {
                return Err(HeaderError::V1("longer than 107 bytes"));
            }
            let mut b = [0u8; 1];
            read_exact(io, &mut b).await?;
            line.push(b[0]);
        }
        return parse_v1(&line[..line.len() - 2]);
    }
    if start[..] == V2_SIGNATURE[..8] {
        let mut rest = [0u8; 8];
        read_exact(io, &mut rest).await?;
        if rest[..4] != V2_SIGNATURE[8..] {
            return Err(HeaderError::V2("bad signature"));
        }
        let (ver_cmd, family) = (rest[4], rest[5]);
        let len = usize::from(u16::from_be_bytes([rest[6], rest[7]]));
        let mut body = vec![0u8; len];
        read_exact(io, &mut body).await?;
        return parse_v2(ver_cmd, family, &body);
    }
    Err(HeaderError::Missing)
}

async fn read_exact<R: AsyncRead + Unpin + ?Sized>(
    io: &mut R,
    buf: &mut [u8],
) -> Result<(), HeaderError> {
    io.read_exact(buf)
        .await
        .map(drop)
        .map_err(|_| HeaderError::Closed)
}

/// `PROXY TCP4 <src> <dst> <sport> <dport>` (without CRLF).
fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, HeaderError> {
    let text = std::str::from_utf8(line).map_err(|_| HeaderError::V1("not ASCII"))?;
    let mut fields = text.split(' ');
    fields.next(); // "PROXY"
    let family = fields.next().ok_or(HeaderError::V1("no protocol"))?;
    if family == "UNKNOWN" {
        // The rest of the line may be anything; the address is not known.
        return Ok(None);
    }
    let rest: Vec<&str> = fields.collect();
    let [src, dst, sport, dport] = rest[..] else {
        return Err(HeaderError::V1("expected 4 fields after the protocol"));
    };
    let (src, dst): (IpAddr, IpAddr) = match family {
        "TCP4" => (
            IpAddr::V4(
                src.parse()
                    .map_err(|_| HeaderError::V1("bad IPv4 source"))?,
            ),
            IpAddr::V4(
                dst.parse()
                    .map_err(|_| HeaderError::V1("bad IPv4 destination"))?,
            ),
        ),
        "TCP6" => (
            IpAddr::V6(
                src.parse()
                    .map_err(|_| HeaderError::V1("bad IPv6 source"))?,
            ),
            IpAddr::V6(
                dst.parse()
                    .map_err(|_| HeaderError::V1("bad IPv6 destination"))?,
            ),
        ),
        _ => return Err(HeaderError::V1("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let _ = dst;
    let sport = port(sport).ok_or(HeaderError::V1("bad source port"))?;
    port(dport).ok_or(HeaderError::V1("bad destination port"))?;
    Ok(Some(SocketAddr::new(src, sport)))
}

/// A decimal port without sign or leading zeros.
fn port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The v2 body after the 16-byte preamble.
fn parse_v2(ver_cmd: u8, family: u8, body: &[u8]) -> Result<Option<SocketAddr>, HeaderError> {
    if ver_cmd >> 4 != 2 {
        return Err(HeaderError::V2("version is not 2"));
    }
    match ver_cmd & 0x0f {
        // LOCAL: the balancer itself (health checks); addresses are ignored.
        0 => return Ok(None),
        1 => {}
        _ => return Err(HeaderError::V2("unknown command")),
    }
    match family {
        // TCP over IPv4: src, dst (4 bytes each), sport, dport; TLVs follow.
        0x11 => {
            let a = body
                .get(..12)
                .ok_or(HeaderError::V2("short IPv4 addresses"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Ok(Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([a[8], a[9]]),
            )))
        }
        // TCP over IPv6: 16-byte addresses.
        0x21 => {
            let a = body
                .get(..36)
                .ok_or(HeaderError::V2("short IPv6 addresses"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(octets);
            Ok(Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([a[32], a[33]]),
            )))
        }
        // UNSPEC, UDP, UNIX sockets: no TCP client address to use.
        0x00 | 0x12 | 0x22 | 0x31 | 0x32 => Ok(None),
        _ => Err(HeaderError::V2("unknown address family")),
    }
}

/// Whether connections from `peer` must start with a PROXY header.
fn expects_header(store: &SnapshotStore, peer: Option<IpAddr>) -> bool {
    let Some(peer) = peer else { return false };
    let set = &store.load().config.client_ip.proxy_protocol;
    !set.is_empty() && set.contains(peer)
}

fn peer_of(digest: Option<&Arc<SocketDigest>>) -> Option<IpAddr> {
    digest
        .and_then(|d| d.peer_addr())
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// Reads the header from a connection that must have one and records the
/// client as the connection's peer.
async fn accept<S>(io: &mut S) -> Result<(), HeaderError>
where
    S: AsyncRead + GetSocketDigest + UniqueID + Unpin + ?Sized,
{
    let source = tokio::time::timeout(HEADER_TIMEOUT, read_header(io))
        .await
        .map_err(|_| HeaderError::Timeout(HEADER_TIMEOUT))??;
    let Some(source) = source else {
        return Ok(());
    };
    let old = io.get_socket_digest();
    let digest = SocketDigest::from_raw_fd(io.id());
    let _ = digest.peer_addr.set(Some(source.into()));
    let _ = digest
        .local_addr
        .set(old.as_ref().and_then(|d| d.local_addr().cloned()));
    io.set_socket_digest(digest);
    Ok(())
}

/// The public listeners' application: reads the PROXY header of plain
/// connections from configured balancers, then hands the connection (and
/// every keep-alive reuse of it) to the HTTP proxy.
pub struct ProxyProtocolApp<A> {
    inner: Arc<A>,
    store: Arc<SnapshotStore>,
}

impl<A> ProxyProtocolApp<A> {
    pub fn new(inner: A, store: Arc<SnapshotStore>) -> Self {
        ProxyProtocolApp {
            inner: Arc::new(inner),
            store,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ProxyProtocolApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // TLS connections had theirs read before the handshake (PreTlsHeader).
        let plain = stream.get_ssl_digest().is_none();
        if plain && expects_header(&self.store, peer_of(stream.get_socket_digest().as_ref())) {
            if let Err(e) = accept(&mut *stream).await {
                tracing::warn!(target: "gatehouse::proxy_protocol", error = %e, "connection closed");
                crate::metrics::metrics().proxy_protocol_rejected.inc();
                return None;
            }
        }
        // The connection's reuses stay here, so the header is read once.
        let mut next = self.inner.process_new(stream, shutdown).await;
        while let Some(reused) = next {
            next = self.inner.process_new(reused, shutdown).await;
        }
        None
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// Reads the PROXY header of TLS connections from configured balancers,
/// before the handshake.
pub struct PreTlsHeader {
    store: Arc<SnapshotStore>,
}

impl PreTlsHeader {
    pub fn new(store: Arc<SnapshotStore>) -> Self {
        PreTlsHeader { store }
    }
}

#[async_trait]
impl PreTlsProcess for PreTlsHeader {
    async fn process(&self, stream: &mut L4Stream) -> pingora::Result<()> {
        if !expects_header(&self.store, peer_of(stream.get_socket_digest().as_ref())) {
            return Ok(());
        }
        accept(stream).await.map_err(|e| {
            tracing::warn!(target: "gatehouse::proxy_protocol", error = %e, "connection closed");
            crate::metrics::metrics().proxy_protocol_rejected.inc();
            pingora::Error::explain(pingora::ErrorType::AcceptError, e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> (Result<Option<SocketAddr>, HeaderError>, Vec<u8>) {
        let mut io = bytes;
        let got = read_header(&mut io).await;
        (got, io.to_vec())
    }

    fn v2(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(family);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[tokio::test]
    async fn v1_tcp4_and_tcp6_leave_the_request_unread() {
        let (got, rest) =
            parse(b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nGET / HTTP/1.1\r\n").await;
        assert_eq!(got, Ok(Some("203.0.113.7:51234".parse().unwrap())));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (got, _) = parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 443\r\n").await;
        assert_eq!(got, Ok(Some("[2001:db8::7]:51234".parse().unwrap())));
        let (got, rest) = parse(b"PROXY UNKNOWN\r\nGET").await;
        assert_eq!((got, rest), (Ok(None), b"GET".to_vec()));
    }

    #[tokio::test]
    async fn v1_garbage_is_refused() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n"[..],
            b"PROXY TCP4 1.2.3.999 5.6.7.8 80 443\r\n",
            b"PROXY TCP4 2001:db8::1 5.6.7.8 80 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 443\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 80 443\r\n",
        ] {
            assert!(
                matches!(parse(bad).await.0, Err(HeaderError::V1(_))),
                "{bad:?}"
            );
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert_eq!(
            parse(&long).await.0,
            Err(HeaderError::V1("longer than 107 bytes"))
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n\r\n").await.0,
            Err(HeaderError::Missing)
        );
        assert_eq!(parse(b"PROXY TCP4 1.2").await.0, Err(HeaderError::Closed));
    }

    #[tokio::test]
    async fn v2_addresses_tlvs_and_local() {
        let mut body = vec![198, 51, 100, 9, 10, 0, 0, 1];
        body.extend_from_slice(&40000u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body.extend_from_slice(&[0x04, 0x00, 0x02, b'h', b'i']); // a TLV, skipped
        let mut wire = v2(1, 0x11, &body);
        wire.extend_from_slice(b"\x16\x03\x01"); // a ClientHello follows
        let (got, rest) = parse(&wire).await;
        assert_eq!(got, Ok(Some("198.51.100.9:40000".parse().unwrap())));
        assert_eq!(rest, b"\x16\x03\x01");

        let mut body6 = Vec::new();
        body6.extend_from_slice(&"2001:db8::9".parse::<Ipv6Addr>().unwrap().octets());
        body6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body6.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
        let (got, _) = parse(&v2(1, 0x21, &body6)).await;
        assert_eq!(got, Ok(Some("[2001:db8::9]:40000".parse().unwrap())));

        assert_eq!(parse(&v2(0, 0x11, &body)).await.0, Ok(None), "LOCAL");
        assert_eq!(parse(&v2(1, 0x00, &[])).await.0, Ok(None), "UNSPEC");
    }

    #[tokio::test]
    async fn v2_garbage_is_refused() {
        assert!(matches!(
            parse(&v2(1, 0x11, &[1, 2, 3])).await.0,
            Err(HeaderError::V2(_))
        ));
        assert!(matches!(
            parse(&v2(7, 0x11, &[0; 12])).await.0,
            Err(HeaderError::V2(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x99, &[0; 12])).await.0,
            Err(HeaderError::V2(_))
        ));
        let mut wrong_version = v2(1, 0x11, &[0; 12]);
        wrong_version[12] = 0x11;
        assert!(matches!(
            parse(&wrong_version).await.0,
            Err(HeaderError::V2(_))
        ));
        let mut truncated = v2(1, 0x11, &[0; 12]);
        truncated.truncate(20);
        assert_eq!(parse(&truncated).await.0, Err(HeaderError::Closed));
    }
}
