//! Transports and flows: where a message came from and where an output goes.
//!
//! Layer: sans-IO values shared by the core ([`crate::gateway`], [`crate::proxy`]) and the
//! drivers. A [`Flow`] is what RFC 5626 calls a flow: the transport, the far end's address
//! and, for a stream transport, the connection that carries it. The driver names connections
//! with opaque [`ConnId`]s; the core never interprets them beyond equality, and carries them in
//! its flow tokens (MAC-protected, see [`crate::proxy::Proxy::flow_token`]) so that a request
//! from the softswitch to a phone registered over TCP or TLS goes back over the phone's
//! connection.

#![forbid(unsafe_code)]

use std::fmt;
use std::net::SocketAddr;

/// A SIP transport (RFC 3261 §18, RFC 7118).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Transport {
    /// Datagrams (UDP sockets or AF_XDP frames).
    #[default]
    Udp = 0,
    /// A TCP stream.
    Tcp = 1,
    /// TLS over TCP (`sips:`).
    Tls = 2,
}

impl Transport {
    /// Every transport, in wire-code order.
    pub const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

    /// Whether messages arrive over a connection (framed by `Content-Length`): the far end's
    /// address is proven by the handshake.
    pub const fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The transport token of a Via (`SIP/2.0/UDP`), upper case.
    pub const fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The URI `transport` parameter value (lower case, RFC 3261 §19.1.1).
    pub const fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// The transport a Via transport token or URI `transport` value names (case-insensitive).
    pub fn from_token(token: &[u8]) -> Option<Transport> {
        Transport::ALL
            .into_iter()
            .find(|t| token.eq_ignore_ascii_case(t.via_token().as_bytes()))
    }

    /// The wire code used in flow tokens.
    pub(crate) const fn code(self) -> u8 {
        self as u8
    }

    /// The transport of a wire code.
    pub(crate) fn from_code(code: u8) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.code() == code)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.uri_param())
    }
}

/// A stream connection, named by the driver that owns it (opaque to the core). The driver
/// that made it decides what the bits mean (the runtime puts its worker index in the top 16
/// bits); ids are not reused while a message could still name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Where a message came from, or where an output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// The transport.
    pub transport: Transport,
    /// The far end's address (the source of what arrived; the destination of what leaves).
    pub peer: SocketAddr,
    /// The connection, for a stream transport. `None` for UDP, and for a stream output to an
    /// address the driver must connect to (or already has a connection to): the softswitch.
    pub conn: Option<ConnId>,
}

impl Flow {
    /// A UDP flow.
    pub const fn udp(peer: SocketAddr) -> Flow {
        Flow {
            transport: Transport::Udp,
            peer,
            conn: None,
        }
    }

    /// A flow over connection `conn`.
    pub const fn stream(transport: Transport, peer: SocketAddr, conn: ConnId) -> Flow {
        Flow {
            transport,
            peer,
            conn: Some(conn),
        }
    }
}

impl From<SocketAddr> for Flow {
    /// A UDP flow.
    fn from(peer: SocketAddr) -> Flow {
        Flow::udp(peer)
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.peer)?;
        if let Some(c) = self.conn {
            write!(f, "#{:x}", c.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_case_insensitively() {
        for t in Transport::ALL {
            assert_eq!(Transport::from_token(t.via_token().as_bytes()), Some(t));
            assert_eq!(Transport::from_token(t.uri_param().as_bytes()), Some(t));
            assert_eq!(Transport::from_code(t.code()), Some(t));
        }
        assert_eq!(Transport::from_token(b"SCTP"), None);
        assert_eq!(Transport::from_code(9), None);
        assert!(!Transport::Udp.is_stream());
        assert!(Transport::Tcp.is_stream() && Transport::Tls.is_stream());
    }

    #[test]
    fn display_names_transport_peer_and_connection() {
        let peer: SocketAddr = "198.18.0.1:5060".parse().unwrap();
        assert_eq!(Flow::udp(peer).to_string(), "udp:198.18.0.1:5060");
        assert_eq!(
            Flow::stream(Transport::Tcp, peer, ConnId(0x1f)).to_string(),
            "tcp:198.18.0.1:5060#1f"
        );
    }
}
