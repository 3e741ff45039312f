//! Falco field names over `vigil_proto::v1::Event`.
//!
//! Every name a rule may use is in [`Field::parse`]: an unknown name is a
//! load error. Some Falco fields have no source in our events (the proto has
//! no environment, no file inode times, no mount table); they parse, so
//! rules written for Falco load, and always evaluate to [`Value::Absent`],
//! which makes any comparison on them false. [`UNSUPPORTED`] lists them.

use std::borrow::Cow;

use vigil_proto::v1::{AddressFamily, Event, EventType, FdKind, SocketAddress};

/// Audit login uid of a process that never logged in.
const UNSET_LOGIN_UID: u32 = u32::MAX;

/// A field's value for one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// The field has no value for this event (`<NA>` in outputs).
    Absent,
    Str(Cow<'a, str>),
    Num(i64),
    /// Multi-valued fields (`proc.aname` without an index).
    Many(Vec<Cow<'a, str>>),
}

impl Value<'_> {
    /// The value as text, as outputs print it.
    pub fn render(&self) -> Option<String> {
        match self {
            Value::Absent => None,
            Value::Str(s) => Some(s.to_string()),
            Value::Num(n) => Some(n.to_string()),
            Value::Many(v) => Some(v.join(",")),
        }
    }
}

/// Which side of a connection an address field names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
    Remote,
    Local,
    /// `fd.ip`/`fd.port`/`fd.net`: either end.
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    EvtType,
    EvtDir,
    EvtRes,
    EvtRawRes,
    EvtFailed,
    EvtTime,
    EvtRawTime,
    EvtHostname,
    EvtIsOpenRead,
    EvtIsOpenWrite,
    EvtIsOpenExec,
    EvtArg(String),
    ProcName,
    ProcExe,
    ProcExePath,
    ProcCmdline,
    ProcArgs,
    ProcPid,
    ProcPpid,
    ProcCwd,
    ProcTty,
    ProcIsExeFromMemfd,
    /// `proc.is_container_runtime_setup`: the process is a container
    /// runtime's own set-up inside the container's cgroup (runc's stages
    /// before the entrypoint runs, `runc exec`'s set-up before its command),
    /// judged by lineage, not by name (`Event.container_runtime_setup`).
    /// Vigil's own: Falco has no equivalent.
    ProcIsContainerRuntimeSetup,
    /// `proc.aname[N]` (0 = the process itself); `None` = every ancestor.
    AncestorName(Option<usize>),
    AncestorPid(Option<usize>),
    AncestorExe(Option<usize>),
    AncestorExePath(Option<usize>),
    AncestorCmdline(usize),
    ThreadTid,
    ThreadCapEffective,
    UserUid,
    UserName,
    UserLoginUid,
    UserLoginName,
    GroupGid,
    GroupName,
    FdName,
    FdDirectory,
    FdFilename,
    FdTypeChar,
    FdType,
    FdNum,
    FdIp(Side),
    FdPort(Side),
    /// `fd.net` and friends: the same address, compared by CIDR.
    FdNet(Side),
    FdL4Proto,
    FdSockFamily,
    ContainerId,
    ContainerFullId,
    ContainerName,
    ContainerImage,
    ContainerImageRepository,
    ContainerImageTag,
    K8sNsName,
    K8sPodName,
    K8sPodUid,
    K8sPodLabels,
    K8sPodLabel(String),
    K8sPodServiceAccount,
    /// A known Falco field our events cannot provide.
    Unsupported(String),
}

/// Falco fields that parse but are always absent here, and why.
pub const UNSUPPORTED: &[(&str, &str)] = &[
    ("evt.num", "no per-host event counter in the stream"),
    ("evt.args", "raw argument text is not carried"),
    ("evt.buffer", "I/O buffers are not captured"),
    (
        "evt.arg",
        "positional arguments (evt.arg[N]) are not carried",
    ),
    ("proc.env", "the environment is not captured"),
    ("proc.vpid", "namespace-local pids are not captured"),
    ("proc.sname", "session leader is not captured"),
    ("proc.sid", "session id is not captured"),
    ("proc.vpgid", "process group is not captured"),
    ("proc.vpgid.name", "process group is not captured"),
    ("proc.vpgid.exe", "process group is not captured"),
    ("proc.is_vpgid_leader", "process group is not captured"),
    ("proc.is_sid_leader", "session id is not captured"),
    ("proc.duration", "process start is boot-relative only"),
    ("proc.ppid.duration", "parent start time is not captured"),
    ("proc.is_exe_upper_layer", "overlayfs layer is not captured"),
    (
        "proc.is_exe_writable",
        "executable inode flags are not captured",
    ),
    ("proc.exe_ino", "executable inode is not captured"),
    ("proc.exe_ino.mtime", "executable inode is not captured"),
    ("proc.exe_ino.ctime", "executable inode is not captured"),
    (
        "proc.exe_ino.ctime_duration_proc_start",
        "executable inode is not captured",
    ),
    (
        "thread.cap_permitted",
        "only effective capabilities are carried",
    ),
    (
        "thread.cap_inheritable",
        "only effective capabilities are carried",
    ),
    ("container.privileged", "container spec is not carried"),
    ("container.start_ts", "container start is not carried"),
    ("container.mounts", "mount table is not carried"),
    ("container.mount.dest", "mount table is not carried"),
    ("container.info", "runtime info is not carried"),
    ("container.image.digest", "image digest is not carried"),
    ("fd.types", "the fd table is not carried"),
    ("fd.name_changed", "fd renames are not tracked"),
    ("fd.nameraw", "only resolved paths are carried"),
    ("fd.connected", "socket state is not tracked"),
    ("fd.sip.name", "DNS names are not resolved"),
    ("fd.cip.name", "DNS names are not resolved"),
    ("fd.rip.name", "DNS names are not resolved"),
    ("fd.lip.name", "DNS names are not resolved"),
    ("fs.path.name", "fs.path fields are not implemented"),
    ("fs.path.nameraw", "fs.path fields are not implemented"),
    ("fs.path.source", "fs.path fields are not implemented"),
    ("fs.path.target", "fs.path fields are not implemented"),
    (
        "syscall.type",
        "same as evt.type for syscalls; use evt.type",
    ),
    ("user.homedir", "the password database is not read"),
    ("user.shell", "the password database is not read"),
];

/// Fields with a direct counterpart.
const NAMES: &[(&str, Field)] = &[
    ("evt.type", Field::EvtType),
    ("evt.dir", Field::EvtDir),
    ("evt.res", Field::EvtRes),
    ("evt.rawres", Field::EvtRawRes),
    ("evt.failed", Field::EvtFailed),
    ("evt.time", Field::EvtTime),
    ("evt.time.iso8601", Field::EvtTime),
    ("evt.rawtime", Field::EvtRawTime),
    ("evt.hostname", Field::EvtHostname),
    ("evt.is_open_read", Field::EvtIsOpenRead),
    ("evt.is_open_write", Field::EvtIsOpenWrite),
    ("evt.is_open_exec", Field::EvtIsOpenExec),
    ("proc.name", Field::ProcName),
    ("proc.exe", Field::ProcExe),
    ("proc.exepath", Field::ProcExePath),
    ("proc.cmdline", Field::ProcCmdline),
    ("proc.args", Field::ProcArgs),
    ("proc.pid", Field::ProcPid),
    ("proc.ppid", Field::ProcPpid),
    ("proc.cwd", Field::ProcCwd),
    ("proc.tty", Field::ProcTty),
    ("proc.loginuid", Field::UserLoginUid),
    ("proc.is_exe_from_memfd", Field::ProcIsExeFromMemfd),
    (
        "proc.is_container_runtime_setup",
        Field::ProcIsContainerRuntimeSetup,
    ),
    ("proc.pname", Field::AncestorName(Some(1))),
    ("proc.pexe", Field::AncestorExe(Some(1))),
    ("proc.pexepath", Field::AncestorExePath(Some(1))),
    ("proc.pcmdline", Field::AncestorCmdline(1)),
    ("proc.aname", Field::AncestorName(None)),
    ("proc.apid", Field::AncestorPid(None)),
    ("proc.aexe", Field::AncestorExe(None)),
    ("proc.aexepath", Field::AncestorExePath(None)),
    ("thread.tid", Field::ThreadTid),
    ("thread.cap_effective", Field::ThreadCapEffective),
    ("user.uid", Field::UserUid),
    ("user.name", Field::UserName),
    ("user.loginuid", Field::UserLoginUid),
    ("user.loginname", Field::UserLoginName),
    ("group.gid", Field::GroupGid),
    ("group.name", Field::GroupName),
    ("fd.name", Field::FdName),
    ("fd.directory", Field::FdDirectory),
    ("fd.filename", Field::FdFilename),
    ("fd.typechar", Field::FdTypeChar),
    ("fd.type", Field::FdType),
    ("fd.num", Field::FdNum),
    ("fd.sip", Field::FdIp(Side::Server)),
    ("fd.cip", Field::FdIp(Side::Client)),
    ("fd.rip", Field::FdIp(Side::Remote)),
    ("fd.lip", Field::FdIp(Side::Local)),
    ("fd.ip", Field::FdIp(Side::Any)),
    ("fd.sport", Field::FdPort(Side::Server)),
    ("fd.cport", Field::FdPort(Side::Client)),
    ("fd.rport", Field::FdPort(Side::Remote)),
    ("fd.lport", Field::FdPort(Side::Local)),
    ("fd.port", Field::FdPort(Side::Any)),
    ("fd.snet", Field::FdNet(Side::Server)),
    ("fd.cnet", Field::FdNet(Side::Client)),
    ("fd.rnet", Field::FdNet(Side::Remote)),
    ("fd.lnet", Field::FdNet(Side::Local)),
    ("fd.net", Field::FdNet(Side::Any)),
    ("fd.l4proto", Field::FdL4Proto),
    ("fd.sockfamily", Field::FdSockFamily),
    ("container.id", Field::ContainerId),
    ("container.full_id", Field::ContainerFullId),
    ("container.name", Field::ContainerName),
    ("container.image", Field::ContainerImage),
    (
        "container.image.repository",
        Field::ContainerImageRepository,
    ),
    ("container.image.tag", Field::ContainerImageTag),
    ("k8s.ns.name", Field::K8sNsName),
    ("k8s.pod.name", Field::K8sPodName),
    ("k8s.pod.uid", Field::K8sPodUid),
    ("k8s.pod.labels", Field::K8sPodLabels),
    ("k8s.pod.sa.name", Field::K8sPodServiceAccount),
];

/// Whether a field yields numbers (then `=`, `<`, `in` compare numerically).
pub fn is_numeric(field: &Field) -> bool {
    matches!(
        field,
        Field::EvtRawRes
            | Field::EvtRawTime
            | Field::ProcPid
            | Field::ProcPpid
            | Field::ProcTty
            | Field::AncestorPid(Some(_))
            | Field::ThreadTid
            | Field::UserUid
            | Field::UserLoginUid
            | Field::GroupGid
            | Field::FdNum
            | Field::FdPort(_)
    )
}

impl Field {
    /// Looks a field up by its Falco name, including `[argument]` forms.
    pub fn parse(name: &str) -> Option<Field> {
        let (base, argument) = match name.split_once('[') {
            Some((base, rest)) => (base, Some(rest.strip_suffix(']')?)),
            None => (name, None),
        };
        if let Some(arg) = base.strip_prefix("evt.arg.") {
            return Some(Field::EvtArg(arg.to_owned()));
        }
        if let Some(argument) = argument {
            return Self::with_argument(base, argument);
        }
        if let Some((_, field)) = NAMES.iter().find(|(n, _)| *n == base) {
            return Some(field.clone());
        }
        UNSUPPORTED
            .iter()
            .any(|(n, _)| *n == base)
            .then(|| Field::Unsupported(base.to_owned()))
    }

    fn with_argument(base: &str, argument: &str) -> Option<Field> {
        let index = argument.parse::<usize>().ok();
        Some(match (base, index) {
            ("proc.aname", Some(n)) => Field::AncestorName(Some(n)),
            ("proc.apid", Some(n)) => Field::AncestorPid(Some(n)),
            ("proc.aexe", Some(n)) => Field::AncestorExe(Some(n)),
            ("proc.aexepath", Some(n)) => Field::AncestorExePath(Some(n)),
            ("k8s.pod.label", _) => Field::K8sPodLabel(argument.to_owned()),
            ("evt.arg", _) => Field::EvtArg(argument.to_owned()),
            _ if UNSUPPORTED.iter().any(|(n, _)| *n == base) => Field::Unsupported(base.to_owned()),
            _ => return None,
        })
    }

    /// The value of this field for `event`.
    pub fn extract<'a>(&self, event: &'a Event) -> Value<'a> {
        match self {
            Field::EvtType => Value::Str(Cow::Borrowed(evt_type(event))),
            Field::EvtDir => Value::Str(Cow::Borrowed("<")),
            Field::EvtRes => Value::Str(Cow::Owned(result_name(event.return_value))),
            Field::EvtRawRes => Value::Num(event.return_value),
            Field::EvtFailed => boolean(event.return_value < 0),
            Field::EvtTime => Value::Str(Cow::Owned(iso8601(event.wall_time_ns))),
            Field::EvtRawTime => num(event.wall_time_ns),
            Field::EvtHostname => text(&event.node),
            Field::EvtIsOpenRead => open_mode(event, |acc| acc != O_WRONLY),
            Field::EvtIsOpenWrite => open_mode(event, |acc| acc != O_RDONLY),
            Field::EvtIsOpenExec => open_exec(event),
            Field::EvtArg(name) => crate::args::extract(event, name),
            Field::ProcName => text(&event.comm),
            Field::ProcExe => argv(event).first().map_or(Value::Absent, |s| text(s)),
            Field::ProcExePath => text(&event.exe_path),
            Field::ProcCmdline => cmdline(&event.comm, argv(event)),
            Field::ProcArgs => match argv(event) {
                [] => Value::Absent,
                [_, rest @ ..] => Value::Str(Cow::Owned(rest.join(" "))),
            },
            Field::ProcPid => Value::Num(event.pid.into()),
            Field::ProcPpid => Value::Num(event.ppid.into()),
            Field::ProcCwd => text(&event.cwd),
            Field::ProcTty => Value::Num(event.tty.into()),
            Field::ProcIsExeFromMemfd => boolean(event.exe_path.starts_with("/memfd:")),
            Field::ProcIsContainerRuntimeSetup => boolean(event.container_runtime_setup),
            Field::AncestorName(index) => ancestors(event, *index, |a| &a.comm, &event.comm),
            Field::AncestorExePath(index) => {
                ancestors(event, *index, |a| &a.exe_path, &event.exe_path)
            }
            Field::AncestorExe(index) => {
                let own = argv(event).first().map_or("", String::as_str);
                ancestors(
                    event,
                    *index,
                    |a| a.cmdline.first().map_or("", String::as_str),
                    own,
                )
            }
            Field::AncestorPid(index) => ancestor_pid(event, *index),
            Field::AncestorCmdline(index) => match event.ancestors.get(index - 1) {
                Some(a) => cmdline(&a.comm, &a.cmdline),
                None => Value::Absent,
            },
            Field::ThreadTid => Value::Num(event.tid.into()),
            Field::ThreadCapEffective => Value::Str(Cow::Owned(capabilities(event.cap_effective))),
            Field::UserUid => Value::Num(event.uid.into()),
            Field::UserName => user_name(event.uid),
            Field::UserLoginUid => Value::Num(login_uid(event.login_uid)),
            Field::UserLoginName => user_name(event.login_uid),
            Field::GroupGid => Value::Num(event.gid.into()),
            Field::GroupName => user_name(event.gid),
            Field::FdName => crate::fd::name(event),
            Field::FdDirectory => crate::fd::directory(event),
            Field::FdFilename => crate::fd::filename(event),
            Field::FdTypeChar => crate::fd::kind(event).map_or(Value::Absent, |k| text(k.0)),
            Field::FdType => crate::fd::kind(event).map_or(Value::Absent, |k| text(k.1)),
            Field::FdNum => crate::fd::number(event),
            Field::FdIp(side) | Field::FdNet(side) => {
                crate::fd::endpoint(event, *side).map_or(Value::Absent, |a| text(&a.ip))
            }
            Field::FdPort(side) => crate::fd::endpoint(event, *side)
                .filter(|a| a.port != 0)
                .map_or(Value::Absent, |a| Value::Num(a.port.into())),
            Field::FdL4Proto => crate::fd::l4proto(event),
            Field::FdSockFamily => crate::fd::family(event),
            Field::ContainerId => {
                Value::Str(Cow::Borrowed(short_container_id(&event.container_id)))
            }
            Field::ContainerFullId => text(&event.container_id),
            Field::ContainerName => pod(event, |p| &p.container_name),
            Field::ContainerImage => pod(event, |p| &p.image),
            Field::ContainerImageRepository => pod(event, |p| split_image(&p.image).0),
            Field::ContainerImageTag => pod(event, |p| split_image(&p.image).1),
            Field::K8sNsName => pod(event, |p| &p.namespace),
            Field::K8sPodName => pod(event, |p| &p.name),
            Field::K8sPodUid => text(&event.pod_uid),
            Field::K8sPodServiceAccount => pod(event, |p| &p.service_account),
            Field::K8sPodLabels => match &event.pod {
                Some(p) if !p.labels.is_empty() => {
                    let mut labels: Vec<Cow<str>> = p
                        .labels
                        .iter()
                        .map(|(k, v)| Cow::Owned(format!("{k}:{v}")))
                        .collect();
                    labels.sort();
                    Value::Many(labels)
                }
                _ => Value::Absent,
            },
            Field::K8sPodLabel(key) => match event.pod.as_ref().and_then(|p| p.labels.get(key)) {
                Some(v) => Value::Str(Cow::Borrowed(v)),
                None => Value::Absent,
            },
            Field::Unsupported(_) => Value::Absent,
        }
    }
}

pub(crate) const O_ACCMODE: u32 = 0o3;
pub(crate) const O_RDONLY: u32 = 0;
pub(crate) const O_WRONLY: u32 = 0o1;

fn text(s: &str) -> Value<'_> {
    if s.is_empty() {
        Value::Absent
    } else {
        Value::Str(Cow::Borrowed(s))
    }
}

fn num(n: u64) -> Value<'static> {
    i64::try_from(n).map_or(Value::Absent, Value::Num)
}

pub(crate) fn boolean(b: bool) -> Value<'static> {
    Value::Str(Cow::Borrowed(if b { "true" } else { "false" }))
}

fn open_mode(event: &Event, accepts: impl Fn(u32) -> bool) -> Value<'static> {
    if event.r#type() != EventType::Open {
        return Value::Absent;
    }
    let flags = event.args.as_ref().map_or(0, |a| a.flags);
    boolean(accepts(flags & O_ACCMODE))
}

/// An open that creates or grants execute mode to the file.
fn open_exec(event: &Event) -> Value<'static> {
    if event.r#type() != EventType::Open {
        return Value::Absent;
    }
    let mode = event.args.as_ref().map_or(0, |a| a.mode);
    boolean(mode & 0o111 != 0)
}

/// Falco's `evt.type`: the exact syscall, or the family's usual syscall
/// when an older collector did not say.
pub fn evt_type(event: &Event) -> &str {
    if !event.syscall.is_empty() {
        return &event.syscall;
    }
    family_syscall(event.r#type())
}

/// The syscall name used for a family when `Event.syscall` is empty.
pub fn family_syscall(event_type: EventType) -> &'static str {
    use EventType as T;
    match event_type {
        T::Unspecified => "unknown",
        T::Exec => "execve",
        T::Open => "openat",
        T::Connect => "connect",
        T::Clone => "clone",
        T::Exit => "procexit",
        T::Unlink => "unlinkat",
        T::Rename => "renameat2",
        T::Link => "linkat",
        T::Symlink => "symlinkat",
        T::Chmod => "fchmodat",
        T::Chown => "fchownat",
        T::Mkdir => "mkdirat",
        T::Mount => "mount",
        T::Umount => "umount2",
        T::Setuid => "setuid",
        T::Setgid => "setgid",
        T::Capset => "capset",
        T::Ptrace => "ptrace",
        T::ProcessVmWritev => "process_vm_writev",
        T::Unshare => "unshare",
        T::Setns => "setns",
        T::Socket => "socket",
        T::Accept => "accept4",
        T::Bind => "bind",
        T::Listen => "listen",
        T::Dup => "dup2",
        T::MemfdCreate => "memfd_create",
        T::MemoryExec => "mprotect",
        T::ModuleLoad => "finit_module",
        T::ModuleUnload => "delete_module",
        T::Bpf => "bpf",
        T::Kill => "kill",
        T::Prctl => "prctl",
        T::Userfaultfd => "userfaultfd",
        T::IoUringSetup => "io_uring_setup",
        T::Keyctl => "keyctl",
        T::Chroot => "chroot",
        T::PivotRoot => "pivot_root",
        T::Heartbeat => "heartbeat",
    }
}

/// argv of the acting process (for an exec, the new image's).
fn argv(event: &Event) -> &[String] {
    if !event.cmdline.is_empty() {
        return &event.cmdline;
    }
    match (&event.args, event.r#type()) {
        (Some(args), EventType::Exec) => &args.argv,
        _ => &[],
    }
}

/// Falco's `proc.cmdline`: the name followed by argv[1..].
fn cmdline<'a>(name: &'a str, argv: &[String]) -> Value<'a> {
    if name.is_empty() {
        return Value::Absent;
    }
    if argv.len() <= 1 {
        return Value::Str(Cow::Borrowed(name));
    }
    let mut line =
        String::with_capacity(name.len() + argv.iter().map(|a| a.len() + 1).sum::<usize>());
    line.push_str(name);
    for arg in &argv[1..] {
        line.push(' ');
        line.push_str(arg);
    }
    Value::Str(Cow::Owned(line))
}

/// Ancestor `index` (0 = the process, 1 = parent), or all of them.
fn ancestors<'a>(
    event: &'a Event,
    index: Option<usize>,
    get: impl Fn(&'a vigil_proto::v1::Ancestor) -> &'a str,
    own: &'a str,
) -> Value<'a> {
    match index {
        Some(0) => text(own),
        Some(n) => event
            .ancestors
            .get(n - 1)
            .map_or(Value::Absent, |a| text(get(a))),
        None if event.ancestors.is_empty() => Value::Absent,
        None => Value::Many(
            event
                .ancestors
                .iter()
                .map(|a| Cow::Borrowed(get(a)))
                .collect(),
        ),
    }
}

fn ancestor_pid(event: &Event, index: Option<usize>) -> Value<'static> {
    match index {
        Some(0) => Value::Num(event.pid.into()),
        Some(n) => event
            .ancestors
            .get(n - 1)
            .map_or(Value::Absent, |a| Value::Num(a.pid.into())),
        None => Value::Many(
            event
                .ancestors
                .iter()
                .map(|a| Cow::Owned(a.pid.to_string()))
                .collect(),
        ),
    }
}

fn pod<'a>(event: &'a Event, get: impl Fn(&'a vigil_proto::v1::PodMeta) -> &'a str) -> Value<'a> {
    event.pod.as_ref().map_or(Value::Absent, |p| text(get(p)))
}

/// `ghcr.io/acme/web:1.4` → (`ghcr.io/acme/web`, `1.4`); a port in the
/// registry host is not a tag, a digest is dropped.
pub fn split_image(image: &str) -> (&str, &str) {
    let image = image.split('@').next().unwrap_or(image);
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(colon) => (
            &image[..name_start + colon],
            &image[name_start + colon + 1..],
        ),
        None => (image, ""),
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

/// Only root is known without reading the container's password database.
fn user_name(id: u32) -> Value<'static> {
    if id == 0 {
        Value::Str(Cow::Borrowed("root"))
    } else {
        Value::Absent
    }
}

fn login_uid(uid: u32) -> i64 {
    if uid == UNSET_LOGIN_UID {
        -1
    } else {
        uid.into()
    }
}

/// `SUCCESS`, or the errno name (`EACCES`) of a failed syscall.
pub fn result_name(return_value: i64) -> String {
    if return_value >= 0 {
        return "SUCCESS".to_owned();
    }
    match i32::try_from(-return_value) {
        Ok(errno) => format!("{:?}", nix::errno::Errno::from_raw(errno)),
        Err(_) => return_value.to_string(),
    }
}

/// RFC 3339 UTC with nanoseconds, as Falco's JSON `time`.
pub fn iso8601(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let nanos = ns % 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A capability mask as Falco prints it: names separated by blanks.
pub fn capabilities(mask: u64) -> String {
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn family_name(address: &SocketAddress) -> Option<&'static str> {
    match address.family() {
        AddressFamily::Inet => Some("ip"),
        AddressFamily::Inet6 => Some("ip6"),
        AddressFamily::Unix => Some("unix"),
        AddressFamily::Unspecified => None,
    }
}

pub(crate) fn fd_kind_names(kind: FdKind) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        FdKind::File => ("f", "file"),
        FdKind::Directory => ("d", "directory"),
        FdKind::SocketInet => ("4", "ipv4"),
        FdKind::SocketInet6 => ("6", "ipv6"),
        FdKind::SocketUnix => ("u", "unix"),
        FdKind::Pipe => ("p", "pipe"),
        FdKind::Memfd => ("f", "memfd"),
        FdKind::Other => ("o", "other"),
        FdKind::Unspecified => return None,
    })
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{Ancestor, Args, PodMeta};

    use super::*;

    fn exec() -> Event {
        Event {
            r#type: EventType::Exec as i32,
            comm: "sh".into(),
            exe_path: "/bin/sh".into(),
            cmdline: vec!["/bin/sh".into(), "-c".into(), "id".into()],
            login_uid: u32::MAX,
            ancestors: vec![
                Ancestor {
                    pid: 10,
                    comm: "bash".into(),
                    exe_path: "/usr/bin/bash".into(),
                    cmdline: vec!["bash".into(), "-i".into()],
                },
                Ancestor {
                    pid: 1,
                    comm: "runc".into(),
                    ..Default::default()
                },
            ],
            pod: Some(PodMeta {
                name: "web-1".into(),
                namespace: "shop".into(),
                image: "registry:5000/acme/web:1.4".into(),
                labels: [("app".to_owned(), "web".to_owned())].into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn get(name: &str, event: &Event) -> Option<String> {
        Field::parse(name)
            .unwrap_or_else(|| panic!("{name} unknown"))
            .extract(event)
            .render()
    }

    #[test]
    fn process_fields_follow_falco() {
        let e = exec();
        assert_eq!(get("proc.cmdline", &e).as_deref(), Some("sh -c id"));
        assert_eq!(get("proc.exe", &e).as_deref(), Some("/bin/sh"));
        assert_eq!(get("proc.args", &e).as_deref(), Some("-c id"));
        assert_eq!(get("proc.pname", &e).as_deref(), Some("bash"));
        assert_eq!(get("proc.pcmdline", &e).as_deref(), Some("bash -i"));
        assert_eq!(get("proc.aname[0]", &e).as_deref(), Some("sh"));
        assert_eq!(get("proc.aname[2]", &e).as_deref(), Some("runc"));
        assert_eq!(get("proc.aname[3]", &e), None);
        assert_eq!(get("proc.aname", &e).as_deref(), Some("bash,runc"));
        assert_eq!(get("proc.apid[1]", &e).as_deref(), Some("10"));
        assert_eq!(get("user.loginuid", &e).as_deref(), Some("-1"));
        assert_eq!(get("user.name", &e).as_deref(), Some("root"));
        assert_eq!(get("evt.type", &e).as_deref(), Some("execve"));
        assert_eq!(get("container.id", &e).as_deref(), Some("host"));
    }

    #[test]
    fn container_and_k8s_fields_come_from_pod_meta() {
        let e = exec();
        assert_eq!(
            get("container.image.repository", &e).as_deref(),
            Some("registry:5000/acme/web")
        );
        assert_eq!(get("container.image.tag", &e).as_deref(), Some("1.4"));
        assert_eq!(get("k8s.ns.name", &e).as_deref(), Some("shop"));
        assert_eq!(get("k8s.pod.label[app]", &e).as_deref(), Some("web"));
        assert_eq!(get("k8s.pod.label[tier]", &e), None);
        assert_eq!(split_image("nginx"), ("nginx", ""));
        assert_eq!(split_image("nginx@sha256:ab"), ("nginx", ""));
    }

    #[test]
    fn unknown_and_unsupported_names() {
        assert_eq!(Field::parse("proc.nmae"), None);
        assert_eq!(Field::parse("proc.aname[x]"), None);
        assert_eq!(
            Field::parse("proc.env[HOME]"),
            Some(Field::Unsupported("proc.env".into()))
        );
        let e = exec();
        assert_eq!(get("container.privileged", &e), None);
        for (name, _) in NAMES {
            assert!(Field::parse(name).is_some(), "{name}");
        }
    }

    #[test]
    fn runtime_set_up_is_the_collector_s_mark() {
        let mut e = exec();
        assert_eq!(
            get("proc.is_container_runtime_setup", &e).as_deref(),
            Some("false")
        );
        e.container_runtime_setup = true;
        assert_eq!(
            get("proc.is_container_runtime_setup", &e).as_deref(),
            Some("true")
        );
    }

    #[test]
    fn open_fields() {
        let e = Event {
            r#type: EventType::Open as i32,
            syscall: "openat".into(),
            return_value: -13,
            args: Some(Args {
                path: "/etc/shadow".into(),
                flags: 0o1101,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(get("evt.res", &e).as_deref(), Some("EACCES"));
        assert_eq!(get("evt.failed", &e).as_deref(), Some("true"));
        assert_eq!(get("evt.is_open_write", &e).as_deref(), Some("true"));
        assert_eq!(get("evt.is_open_read", &e).as_deref(), Some("false"));
        assert_eq!(get("evt.is_open_read", &exec()), None);
    }

    #[test]
    fn times_and_capabilities_render() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            iso8601(1_685_022_245_478_445_995),
            "2023-05-25T13:44:05.478445995Z"
        );
        assert_eq!(capabilities((1 << 21) | 1), "CAP_CHOWN CAP_SYS_ADMIN");
    }
}
