//! One hookd per listen address.
//!
//! The shards listen with `SO_REUSEPORT` (one socket each, the kernel spreading connections
//! over them). The same option would let a second process of the same user join the group and
//! take part of the traffic, so before the shards bind, hookd claims the address:
//!
//! 1. A probe socket is bound to it *without* `SO_REUSEPORT`: that fails with `EADDRINUSE`
//!    while any process listens there. It has `SO_REUSEADDR`, so the connections of a hookd
//!    just stopped (in `TIME_WAIT`) do not hold up a restart, and it never listens, so the
//!    shards' sockets bind beside it. Port 0 is resolved by this bind.
//! 2. An abstract Unix socket named `hookd-listen-<address>` is bound for the life of the
//!    process: of two hookds started at the same instant (both probes pass before either
//!    listens), only one binds it. The kernel frees it when the process ends, however it
//!    ends, so nothing is left to clean up. Abstract names belong to the network namespace,
//!    as ports do.

use std::io;
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;

use socket2::{Domain, Protocol, Socket, Type};

/// Why the address could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Some process listens on the address.
    #[error("{addr} is in use: another process already listens on it")]
    InUse { addr: SocketAddr },
    /// Another hookd holds the claim on the address (it runs or is starting).
    #[error("{addr} is in use: another hookd is running or starting on it")]
    Claimed { addr: SocketAddr },
    /// The address cannot be bound (not local, a privileged port, ...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// The claim on a listen address, held until dropped (hookd holds it until it exits).
#[derive(Debug)]
pub struct Claim {
    addr: SocketAddr,
    probe: Option<Socket>,
    _name: UnixDatagram,
}

impl Claim {
    /// The address claimed, with the port resolved when 0 was asked for.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the probe socket, once the shards' sockets are bound.
    pub fn release_probe(&mut self) {
        self.probe = None;
    }
}

/// Claims `addr` for this process; see the module doc.
pub fn claim(addr: SocketAddr) -> Result<Claim, ClaimError> {
    let bind_error = |source: io::Error| match source.kind() {
        io::ErrorKind::AddrInUse => ClaimError::InUse { addr },
        _ => ClaimError::Bind { addr, source },
    };
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(bind_error)?;
    probe.set_reuse_address(true).map_err(bind_error)?;
    probe.bind(&addr.into()).map_err(bind_error)?;
    let addr = probe
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| bind_error(io::Error::other("no local address after bind")))?;
    let name = format!("hookd-listen-{addr}");
    let named = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|source| ClaimError::Bind { addr, source })?;
    let unix = UnixDatagram::bind_addr(&named).map_err(|source| match source.kind() {
        io::ErrorKind::AddrInUse => ClaimError::Claimed { addr },
        _ => ClaimError::Bind { addr, source },
    })?;
    Ok(Claim {
        addr,
        probe: Some(probe),
        _name: unix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listened_address_is_refused() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = busy.local_addr().expect("addr");
        assert!(matches!(claim(addr), Err(ClaimError::InUse { .. })));
        drop(busy);
        claim(addr).expect("free again");
    }

    #[test]
    fn a_claimed_address_is_refused_until_released() {
        let first = claim("127.0.0.1:0".parse().expect("addr")).expect("claim");
        let addr = first.addr();
        assert_ne!(addr.port(), 0);
        // Nobody listens yet: the probe passes, the name does not.
        assert!(matches!(claim(addr), Err(ClaimError::Claimed { .. })));
        drop(first);
        claim(addr).expect("released");
    }

    #[test]
    fn shards_bind_beside_the_probe() {
        let mut c = claim("127.0.0.1:0".parse().expect("addr")).expect("claim");
        let a = super::super::server::bind_reuseport(c.addr()).expect("first shard");
        let _b = super::super::server::bind_reuseport(c.addr()).expect("second shard");
        c.release_probe();
        assert_eq!(a.local_addr().expect("addr"), c.addr());
        // Once the shards listen, the address is refused to anyone else.
        assert!(matches!(claim(c.addr()), Err(ClaimError::InUse { .. })));
    }
}
