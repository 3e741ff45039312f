//! The `fd.*` fields: the file or socket a syscall acts on.

use std::borrow::Cow;

use vigil_proto::v1::{AddressFamily, Event, EventType, SocketAddress};

use crate::fields::{Side, Value, family_name, fd_kind_names};

/// `O_DIRECTORY` on x86-64 and arm64.
const O_DIRECTORY: u32 = 0o200000;

/// The path a file-system event names (`fd.name` of opens, and of the
/// path-taking syscalls, so one rule covers `open` and `unlink` alike).
pub fn path(event: &Event) -> Option<&str> {
    use EventType as T;
    match event.r#type() {
        T::Open | T::Unlink | T::Chmod | T::Chown | T::Mkdir | T::Chroot => event
            .args
            .as_ref()
            .map(|a| a.path.as_str())
            .filter(|p| !p.is_empty()),
        // The new name is what now exists on disk.
        T::Rename | T::Link | T::Symlink => event
            .args
            .as_ref()
            .map(|a| a.target_path.as_str())
            .filter(|p| !p.is_empty()),
        T::MemfdCreate => None,
        _ => None,
    }
}

pub fn name(event: &Event) -> Value<'_> {
    if let Some(path) = path(event) {
        return Value::Str(Cow::Borrowed(path));
    }
    if event.r#type() == EventType::MemfdCreate {
        let name = event.args.as_ref().map_or("", |a| a.name.as_str());
        return Value::Str(Cow::Owned(format!("memfd:{name}")));
    }
    let Some(address) = endpoint(event, Side::Remote).or_else(|| endpoint(event, Side::Local))
    else {
        return Value::Absent;
    };
    match address.family() {
        AddressFamily::Inet => Value::Str(Cow::Owned(format!("{}:{}", address.ip, address.port))),
        AddressFamily::Inet6 => {
            Value::Str(Cow::Owned(format!("[{}]:{}", address.ip, address.port)))
        }
        AddressFamily::Unix if !address.unix_path.is_empty() => {
            Value::Str(Cow::Borrowed(&address.unix_path))
        }
        _ => Value::Absent,
    }
}

pub fn directory(event: &Event) -> Value<'_> {
    path(event).map_or(Value::Absent, |p| Value::Str(Cow::Borrowed(split(p).0)))
}

pub fn filename(event: &Event) -> Value<'_> {
    path(event).map_or(Value::Absent, |p| Value::Str(Cow::Borrowed(split(p).1)))
}

/// Splits an absolute path into directory and file name (`/etc`, `shadow`).
pub fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

/// (`fd.typechar`, `fd.type`).
pub fn kind(event: &Event) -> Option<(&'static str, &'static str)> {
    use EventType as T;
    let args = event.args.as_ref();
    match event.r#type() {
        T::Open => {
            let directory = args.is_some_and(|a| a.flags & O_DIRECTORY != 0);
            Some(if directory {
                ("d", "directory")
            } else {
                ("f", "file")
            })
        }
        T::MemfdCreate => Some(("f", "memfd")),
        T::Connect | T::Accept | T::Bind | T::Listen => {
            let address = endpoint(event, Side::Remote).or_else(|| endpoint(event, Side::Local))?;
            match address.family() {
                AddressFamily::Inet => Some(("4", "ipv4")),
                AddressFamily::Inet6 => Some(("6", "ipv6")),
                AddressFamily::Unix => Some(("u", "unix")),
                AddressFamily::Unspecified => None,
            }
        }
        T::Socket => match args?.domain {
            2 => Some(("4", "ipv4")),
            10 => Some(("6", "ipv6")),
            1 => Some(("u", "unix")),
            _ => None,
        },
        T::Dup => fd_kind_names(args?.fd_kind()),
        _ => None,
    }
}

/// The descriptor: an open's result, otherwise the fd argument.
pub fn number(event: &Event) -> Value<'static> {
    use EventType as T;
    match event.r#type() {
        T::Open | T::Socket | T::MemfdCreate if event.return_value >= 0 => {
            Value::Num(event.return_value)
        }
        T::Connect | T::Accept | T::Bind | T::Listen | T::Dup | T::Setns => event
            .args
            .as_ref()
            .map_or(Value::Absent, |a| Value::Num(a.fd.into())),
        _ => Value::Absent,
    }
}

/// One end of the connection an event is about. For a connect we are the
/// client and the peer the server; for accept the reverse.
pub fn endpoint(event: &Event, side: Side) -> Option<&SocketAddress> {
    use EventType as T;
    let args = event.args.as_ref()?;
    let peer = args.address.as_ref();
    let local = args.local_address.as_ref();
    let chosen = match (event.r#type(), side) {
        (T::Connect, Side::Server | Side::Remote | Side::Any) => peer,
        (T::Connect, Side::Client | Side::Local) => local,
        (T::Accept, Side::Server | Side::Local) => local,
        (T::Accept, Side::Client | Side::Remote | Side::Any) => peer,
        (T::Bind | T::Listen, Side::Server | Side::Local | Side::Any) => local,
        _ => None,
    }?;
    matches!(
        chosen.family(),
        AddressFamily::Inet | AddressFamily::Inet6 | AddressFamily::Unix
    )
    .then_some(chosen)
}

/// Known only from socket(2)'s type argument.
pub fn l4proto(event: &Event) -> Value<'static> {
    if event.r#type() != EventType::Socket {
        return Value::Absent;
    }
    let Some(args) = event.args.as_ref() else {
        return Value::Absent;
    };
    // The low bits of the type; SOCK_NONBLOCK/SOCK_CLOEXEC are high flags.
    match (args.domain, args.socket_type & 0xf) {
        (2 | 10, 1) => Value::Str(Cow::Borrowed("tcp")),
        (2 | 10, 2) => Value::Str(Cow::Borrowed("udp")),
        (2 | 10, 3) => Value::Str(Cow::Borrowed("raw")),
        _ => Value::Absent,
    }
}

pub fn family(event: &Event) -> Value<'static> {
    endpoint(event, Side::Remote)
        .or_else(|| endpoint(event, Side::Local))
        .and_then(family_name)
        .map_or(Value::Absent, |f| Value::Str(Cow::Borrowed(f)))
}
