//! `vigil_connect_record`: connect(2) at exit, with the address it was given.

use std::{
    mem::offset_of,
    net::{Ipv4Addr, Ipv6Addr},
};

use vigil_proto::v1::{AddressFamily, Args, SocketAddress};

use super::{DecodeError, Decoded, Record};
use crate::kernel::abi::{self, ConnectRecord};

/// `sun_family` precedes `sun_path` in `struct sockaddr_un`.
const SUN_PATH_OFFSET: u32 = 2;

pub(super) fn decode(record: &Record<'_>, decoded: &mut Decoded) -> Result<(), DecodeError> {
    let family = record.u16(offset_of!(ConnectRecord, connect.family))?;
    let addr: [u8; abi::ADDR_LEN] = record.array(offset_of!(ConnectRecord, connect.addr))?;
    let addrlen = record.u32(offset_of!(ConnectRecord, connect.addrlen))?;
    let port = u32::from(record.u16(offset_of!(ConnectRecord, connect.port))?);
    let address = match family {
        abi::AF_INET => SocketAddress {
            family: AddressFamily::Inet.into(),
            ip: Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
            port,
            ..SocketAddress::default()
        },
        abi::AF_INET6 => SocketAddress {
            family: AddressFamily::Inet6.into(),
            ip: Ipv6Addr::from(addr).to_string(),
            port,
            ..SocketAddress::default()
        },
        abi::AF_UNIX => SocketAddress {
            family: AddressFamily::Unix.into(),
            unix_path: unix_path(record, addrlen)?,
            ..SocketAddress::default()
        },
        _ => SocketAddress::default(),
    };
    decoded.event.args = Some(Args {
        fd: record.i32(offset_of!(ConnectRecord, connect.fd))?,
        address: Some(address),
        ..Args::default()
    });
    Ok(())
}

/// A filesystem path up to its NUL, or an abstract name (leading NUL,
/// exactly `addrlen - 2` bytes) written `@name` as `ss` and `lsof` do.
fn unix_path(record: &Record<'_>, addrlen: u32) -> Result<String, DecodeError> {
    let len = addrlen
        .saturating_sub(SUN_PATH_OFFSET)
        .min(abi::UNIX_PATH_LEN as u32);
    let bytes = record.bytes(
        offset_of!(ConnectRecord, connect.unix_path),
        abi::UNIX_PATH_LEN,
        len,
        "addrlen",
    )?;
    Ok(match bytes.split_first() {
        Some((0, name)) => format!("@{}", String::from_utf8_lossy(name)),
        _ => super::until_nul(bytes),
    })
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;
    use crate::decode::{
        self,
        tests::{put, record},
    };

    fn connect_record(family: u16, port: u16, addr: &[u8], addrlen: u32, unix: &[u8]) -> Vec<u8> {
        let mut bytes = record(abi::KIND_CONNECT, size_of::<ConnectRecord>());
        put(
            &mut bytes,
            offset_of!(ConnectRecord, connect.fd),
            &5i32.to_ne_bytes(),
        );
        put(
            &mut bytes,
            offset_of!(ConnectRecord, connect.family),
            &family.to_ne_bytes(),
        );
        put(
            &mut bytes,
            offset_of!(ConnectRecord, connect.port),
            &port.to_ne_bytes(),
        );
        put(
            &mut bytes,
            offset_of!(ConnectRecord, connect.addrlen),
            &addrlen.to_ne_bytes(),
        );
        put(&mut bytes, offset_of!(ConnectRecord, connect.addr), addr);
        put(
            &mut bytes,
            offset_of!(ConnectRecord, connect.unix_path),
            unix,
        );
        bytes
    }

    fn address(bytes: &[u8]) -> SocketAddress {
        decode::decode(bytes)
            .unwrap()
            .event
            .args
            .unwrap()
            .address
            .unwrap()
    }

    #[test]
    fn ipv4_and_ipv6_addresses_are_decoded() {
        let v4 = address(&connect_record(
            abi::AF_INET,
            8080,
            &[127, 0, 0, 1],
            16,
            b"",
        ));
        assert_eq!(
            (v4.family(), v4.ip.as_str(), v4.port),
            (AddressFamily::Inet, "127.0.0.1", 8080)
        );
        let v6 = address(&connect_record(
            abi::AF_INET6,
            443,
            &Ipv6Addr::LOCALHOST.octets(),
            28,
            b"",
        ));
        assert_eq!(
            (v6.family(), v6.ip.as_str(), v6.port),
            (AddressFamily::Inet6, "::1", 443)
        );
    }

    #[test]
    fn unix_paths_and_abstract_names_are_decoded() {
        let path = b"/run/app.sock\0";
        let named = address(&connect_record(
            abi::AF_UNIX,
            0,
            &[],
            2 + path.len() as u32,
            path,
        ));
        assert_eq!(
            (named.family(), named.unix_path.as_str()),
            (AddressFamily::Unix, "/run/app.sock")
        );
        let abstract_name = address(&connect_record(abi::AF_UNIX, 0, &[], 2 + 5, b"\0nats"));
        assert_eq!(abstract_name.unix_path, "@nats");
        let oversized = address(&connect_record(abi::AF_UNIX, 0, &[], 4096, path));
        assert_eq!(oversized.unix_path, "/run/app.sock");
    }

    #[test]
    fn other_families_have_no_address() {
        let other = address(&connect_record(16, 0, &[], 12, b""));
        assert_eq!(other, SocketAddress::default());
    }
}
