//! A `struct sockaddr` as the caller passed it → `vigil.v1.SocketAddress`.

use std::net::{Ipv4Addr, Ipv6Addr};

use vigil_proto::v1::{AddressFamily, SocketAddress};

use crate::kernel::abi;

/// `sun_family` precedes `sun_path` in `struct sockaddr_un`.
const SUN_PATH_OFFSET: usize = 2;

/// The address in `bytes` (as many as the caller said it passed), `None`
/// when there is none or it is too short for its family. Ports are in
/// network byte order in a sockaddr.
pub(crate) fn parse(bytes: &[u8]) -> Option<SocketAddress> {
    let family = u16::from_ne_bytes(bytes.get(..2)?.try_into().ok()?);
    let port = || {
        bytes
            .get(2..4)
            .map(|p| u32::from(u16::from_be_bytes([p[0], p[1]])))
    };
    match family {
        abi::AF_INET => {
            let ip: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
            Some(SocketAddress {
                family: AddressFamily::Inet.into(),
                ip: Ipv4Addr::from(ip).to_string(),
                port: port()?,
                ..SocketAddress::default()
            })
        }
        abi::AF_INET6 => {
            let ip: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
            Some(SocketAddress {
                family: AddressFamily::Inet6.into(),
                ip: Ipv6Addr::from(ip).to_string(),
                port: port()?,
                ..SocketAddress::default()
            })
        }
        abi::AF_UNIX => Some(SocketAddress {
            family: AddressFamily::Unix.into(),
            unix_path: unix_path(bytes.get(SUN_PATH_OFFSET..).unwrap_or_default()),
            ..SocketAddress::default()
        }),
        _ => Some(SocketAddress::default()),
    }
}

/// A filesystem path up to its NUL, or an abstract name (leading NUL, every
/// byte the caller passed) written `@name` as `ss` and `lsof` do.
fn unix_path(bytes: &[u8]) -> String {
    match bytes.split_first() {
        Some((0, name)) => format!("@{}", String::from_utf8_lossy(name)),
        _ => super::until_nul(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(port: u16, ip: [u8; 4]) -> Vec<u8> {
        let mut bytes = abi::AF_INET.to_ne_bytes().to_vec();
        bytes.extend(port.to_be_bytes());
        bytes.extend(ip);
        bytes.extend([0; 8]);
        bytes
    }

    #[test]
    fn ipv4_ipv6_and_unix_addresses_are_parsed() {
        let v4 = parse(&inet(8080, [10, 1, 2, 3])).unwrap();
        assert_eq!(
            (v4.family(), v4.ip.as_str(), v4.port),
            (AddressFamily::Inet, "10.1.2.3", 8080)
        );

        let mut v6 = abi::AF_INET6.to_ne_bytes().to_vec();
        v6.extend(443u16.to_be_bytes());
        v6.extend([0; 4]);
        v6.extend(Ipv6Addr::LOCALHOST.octets());
        v6.extend([0; 4]);
        let v6 = parse(&v6).unwrap();
        assert_eq!(
            (v6.family(), v6.ip.as_str(), v6.port),
            (AddressFamily::Inet6, "::1", 443)
        );

        let mut path = abi::AF_UNIX.to_ne_bytes().to_vec();
        path.extend(b"/run/docker.sock\0garbage");
        assert_eq!(parse(&path).unwrap().unix_path, "/run/docker.sock");
        let mut abstract_name = abi::AF_UNIX.to_ne_bytes().to_vec();
        abstract_name.extend(b"\0vigil");
        assert_eq!(parse(&abstract_name).unwrap().unix_path, "@vigil");
    }

    #[test]
    fn short_or_missing_addresses_are_none() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[2]), None);
        assert_eq!(parse(&inet(1, [1, 2, 3, 4])[..6]), None);
        let mut v6 = abi::AF_INET6.to_ne_bytes().to_vec();
        v6.extend([0; 10]);
        assert_eq!(parse(&v6), None);
        let other = parse(&[99, 0, 1, 2]).unwrap();
        assert_eq!(other.family(), AddressFamily::Unspecified);
    }
}
