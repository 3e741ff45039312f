//! Falco field names over Vigil events.
//!
//! Outputs and `output_fields` speak Falco's vocabulary (`proc.name`,
//! `fd.name`, `container.id`, ...) so tools built for Falco alerts read ours.
//! The full rule language will extract the same fields for conditions, which
//! is why this is a table of its own rather than code inside each rule.
//!
//! A field with no value for an event (a path on a connect, argv on an open)
//! yields `None`; outputs print it as `<NA>`, as Falco does.

use vigil_proto::v1::{AddressFamily, Event, EventType, SocketAddress};

/// Audit login uid of a process that never logged in.
const UNSET_LOGIN_UID: u32 = u32::MAX;

/// A field Vigil can extract from an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    EvtType,
    EvtRawTime,
    EvtRes,
    EvtRawRes,
    EvtHostname,
    ProcName,
    ProcExe,
    ProcExePath,
    ProcCmdline,
    ProcArgs,
    ProcPid,
    ProcPpid,
    ProcCwd,
    ThreadTid,
    UserUid,
    UserLoginUid,
    GroupGid,
    FdName,
    FdDirectory,
    FdFilename,
    FdRemoteIp,
    FdRemotePort,
    ContainerId,
    ContainerFullId,
}

/// Every field by its Falco name. `fd.sip`/`fd.sport` are the server side of
/// a connection, which for an outbound connect is the remote side.
const NAMES: &[(&str, Field)] = &[
    ("evt.type", Field::EvtType),
    ("evt.rawtime", Field::EvtRawTime),
    ("evt.res", Field::EvtRes),
    ("evt.rawres", Field::EvtRawRes),
    ("evt.hostname", Field::EvtHostname),
    ("proc.name", Field::ProcName),
    ("proc.exe", Field::ProcExe),
    ("proc.exepath", Field::ProcExePath),
    ("proc.cmdline", Field::ProcCmdline),
    ("proc.args", Field::ProcArgs),
    ("proc.pid", Field::ProcPid),
    ("proc.ppid", Field::ProcPpid),
    ("proc.cwd", Field::ProcCwd),
    ("thread.tid", Field::ThreadTid),
    ("user.uid", Field::UserUid),
    ("user.loginuid", Field::UserLoginUid),
    ("group.gid", Field::GroupGid),
    ("fd.name", Field::FdName),
    ("fd.directory", Field::FdDirectory),
    ("fd.filename", Field::FdFilename),
    ("fd.rip", Field::FdRemoteIp),
    ("fd.sip", Field::FdRemoteIp),
    ("fd.rport", Field::FdRemotePort),
    ("fd.sport", Field::FdRemotePort),
    ("container.id", Field::ContainerId),
    ("container.full_id", Field::ContainerFullId),
];

impl Field {
    /// Looks a field up by its Falco name.
    pub fn parse(name: &str) -> Option<Field> {
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    /// The value of this field for `event`, as text.
    pub fn extract(self, event: &Event) -> Option<String> {
        let args = event.args.as_ref();
        let value = match self {
            Field::EvtType => return evt_type(event.r#type()).map(str::to_owned),
            Field::EvtRawTime => event.wall_time_ns.to_string(),
            Field::EvtRes => result_name(event.return_value),
            Field::EvtRawRes => event.return_value.to_string(),
            Field::EvtHostname => non_empty(&event.node)?,
            Field::ProcName => non_empty(&event.comm)?,
            Field::ProcExe => non_empty(args?.argv.first()?)?,
            Field::ProcExePath => non_empty(&event.exe_path)?,
            Field::ProcCmdline => cmdline(event)?,
            Field::ProcArgs => exec_args(event)?.join(" "),
            Field::ProcPid => event.pid.to_string(),
            Field::ProcPpid => event.ppid.to_string(),
            Field::ProcCwd => non_empty(&event.cwd)?,
            Field::ThreadTid => event.tid.to_string(),
            Field::UserUid => event.uid.to_string(),
            Field::UserLoginUid => login_uid(event.login_uid),
            Field::GroupGid => event.gid.to_string(),
            Field::FdName => fd_name(event)?,
            Field::FdDirectory => split_path(file_path(event)?).0.to_owned(),
            Field::FdFilename => split_path(file_path(event)?).1.to_owned(),
            Field::FdRemoteIp => non_empty(&inet_address(event)?.ip)?,
            Field::FdRemotePort => inet_address(event)?.port.to_string(),
            Field::ContainerId => short_container_id(&event.container_id).to_owned(),
            Field::ContainerFullId => non_empty(&event.container_id)?,
        };
        Some(value)
    }
}

/// Falco's `evt.type` for our event families. The collector folds
/// open/openat/openat2/creat into one OPEN type, so the family name is used.
pub fn evt_type(event_type: EventType) -> Option<&'static str> {
    match event_type {
        EventType::Exec => Some("execve"),
        EventType::Open => Some("open"),
        EventType::Connect => Some("connect"),
        EventType::Heartbeat => Some("heartbeat"),
        // No rule of this engine looks at the other families yet.
        _ => None,
    }
}

/// Falco's `container.id`: the 12-character short id, `host` outside containers.
pub fn short_container_id(id: &str) -> &str {
    if id.is_empty() {
        "host"
    } else {
        id.get(..12).unwrap_or(id)
    }
}

/// The file path an open event names.
pub fn file_path(event: &Event) -> Option<&str> {
    if event.r#type() != EventType::Open {
        return None;
    }
    event
        .args
        .as_ref()
        .map(|a| a.path.as_str())
        .filter(|p| !p.is_empty())
}

/// The IPv4/IPv6 destination of a connect event.
pub fn inet_address(event: &Event) -> Option<&SocketAddress> {
    if event.r#type() != EventType::Connect {
        return None;
    }
    let address = event.args.as_ref()?.address.as_ref()?;
    matches!(address.family(), AddressFamily::Inet | AddressFamily::Inet6).then_some(address)
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// `SUCCESS`, or the errno name (`EACCES`) of a failed syscall.
fn result_name(return_value: i64) -> String {
    if return_value >= 0 {
        return "SUCCESS".to_owned();
    }
    match i32::try_from(-return_value) {
        Ok(errno) => format!("{:?}", nix::errno::Errno::from_raw(errno)),
        Err(_) => return_value.to_string(),
    }
}

fn login_uid(uid: u32) -> String {
    if uid == UNSET_LOGIN_UID {
        "-1".to_owned()
    } else {
        uid.to_string()
    }
}

fn exec_args(event: &Event) -> Option<&[String]> {
    let argv = &event.args.as_ref()?.argv;
    (event.r#type() == EventType::Exec && !argv.is_empty()).then(|| &argv[1..])
}

/// Falco's `proc.cmdline`: the process name followed by argv[1..].
fn cmdline(event: &Event) -> Option<String> {
    let args = exec_args(event)?;
    let mut line = event.comm.clone();
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    Some(line)
}

/// Falco's `fd.name`: a file's path, or `ip:port` of a connection's peer.
fn fd_name(event: &Event) -> Option<String> {
    match event.r#type() {
        EventType::Open => file_path(event).map(str::to_owned),
        EventType::Connect => {
            let address = event.args.as_ref()?.address.as_ref()?;
            match address.family() {
                AddressFamily::Inet => Some(format!("{}:{}", address.ip, address.port)),
                AddressFamily::Inet6 => Some(format!("[{}]:{}", address.ip, address.port)),
                AddressFamily::Unix => non_empty(&address.unix_path),
                AddressFamily::Unspecified => None,
            }
        }
        _ => None,
    }
}

/// Splits an absolute path into directory and file name (`/etc`, `shadow`).
fn split_path(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_proto::v1::Args;

    fn connect(family: AddressFamily, ip: &str, port: u32) -> Event {
        Event {
            r#type: EventType::Connect as i32,
            return_value: -115,
            args: Some(Args {
                address: Some(SocketAddress {
                    family: family as i32,
                    ip: ip.into(),
                    port,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn every_name_parses_to_a_field() {
        for (name, field) in NAMES {
            assert_eq!(Field::parse(name), Some(*field));
        }
        assert_eq!(Field::parse("proc.nam"), None);
    }

    #[test]
    fn connect_fields_name_the_peer_and_the_errno() {
        let event = connect(AddressFamily::Inet, "10.1.2.3", 4444);
        assert_eq!(
            Field::FdName.extract(&event).as_deref(),
            Some("10.1.2.3:4444")
        );
        assert_eq!(Field::FdRemotePort.extract(&event).as_deref(), Some("4444"));
        assert_eq!(
            Field::EvtRes.extract(&event).as_deref(),
            Some("EINPROGRESS")
        );
        assert_eq!(Field::FdDirectory.extract(&event), None);
        let v6 = connect(AddressFamily::Inet6, "::1", 80);
        assert_eq!(Field::FdName.extract(&v6).as_deref(), Some("[::1]:80"));
    }

    #[test]
    fn exec_fields_follow_falco() {
        let event = Event {
            r#type: EventType::Exec as i32,
            comm: "sh".into(),
            login_uid: u32::MAX,
            args: Some(Args {
                argv: vec!["/bin/sh".into(), "-c".into(), "id".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            Field::ProcCmdline.extract(&event).as_deref(),
            Some("sh -c id")
        );
        assert_eq!(Field::ProcExe.extract(&event).as_deref(), Some("/bin/sh"));
        assert_eq!(Field::UserLoginUid.extract(&event).as_deref(), Some("-1"));
        assert_eq!(Field::ContainerId.extract(&event).as_deref(), Some("host"));
        assert_eq!(Field::ContainerFullId.extract(&event), None);
        assert_eq!(Field::FdName.extract(&event), None);
    }

    #[test]
    fn file_paths_split_into_directory_and_name() {
        assert_eq!(split_path("/etc/shadow"), ("/etc", "shadow"));
        assert_eq!(split_path("/shadow"), ("/", "shadow"));
        assert_eq!(short_container_id(&"a".repeat(64)), "a".repeat(12));
    }
}
