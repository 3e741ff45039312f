//! Falco field names over `vigil_proto::v1::Event`.
//!
//! [`FIELDS`] is the one table of the fields a rule may use, with their
//! types and meanings: parsing, `vigil-detectors rules fields` and the
//! generated reference (`docs/rules/fields.md`) all read it. Some Falco
//! fields have no source in our events (the proto has no environment, no
//! file inode times, no mount table): they are listed in [`UNSUPPORTED`] and
//! parse as [`Field::Unsupported`], so a Falco rule naming one is recognised
//! and reported by name (and skipped) instead of failing on an unknown
//! field or evaluating a comparison that can never hold. Any other name is
//! an unknown field.

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
    EvtNum,
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
    FdNameRaw,
    FdDev,
    FdIno,
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

/// A field's type, as the reference prints it and comparisons treat it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Text,
    Number,
    /// `true` or `false`.
    Bool,
    Ip,
    /// An address compared with `=`/`in` by CIDR (`10.0.0.0/8`).
    Network,
    /// RFC 3339 UTC with nanoseconds.
    Time,
    /// Several values: `in` holds when all are in the set, other
    /// operators when any value matches.
    List,
}

impl Type {
    pub fn name(self) -> &'static str {
        match self {
            Type::Text => "string",
            Type::Number => "number",
            Type::Bool => "bool",
            Type::Ip => "ip",
            Type::Network => "ipnet",
            Type::Time => "time",
            Type::List => "list",
        }
    }
}

/// How a field is written in a rule.
#[derive(Clone, Debug)]
pub enum Form {
    /// `name`.
    Plain(Field),
    /// `name` (every ancestor) or `name[N]` (0: the process, 1: its parent).
    Indexed(fn(Option<usize>) -> Field),
    /// `name[KEY]`.
    Keyed(fn(String) -> Field),
}

/// One field a rule may use: the single table behind parsing, `rules
/// fields` and the generated reference (`docs/rules/fields.md`).
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub form: Form,
    pub kind: Type,
    pub meaning: &'static str,
}

impl Spec {
    /// The name as a rule writes it (`proc.aname[N]`, `k8s.pod.label[KEY]`).
    pub fn syntax(&self) -> String {
        match self.form {
            Form::Plain(_) => self.name.to_owned(),
            Form::Indexed(_) => format!("{0}, {0}[N]", self.name),
            Form::Keyed(_) if self.name == "evt.arg" => "evt.arg.NAME, evt.arg[NAME]".to_owned(),
            Form::Keyed(_) => format!("{}[KEY]", self.name),
        }
    }
}

const fn spec(name: &'static str, field: Field, kind: Type, meaning: &'static str) -> Spec {
    Spec {
        name,
        form: Form::Plain(field),
        kind,
        meaning,
    }
}

/// Every supported field. Names in [`UNSUPPORTED`] parse but are refused
/// as conditions (the rule is skipped and reported); any other name is an
/// unknown field.
pub const FIELDS: &[Spec] = &[
    spec(
        "evt.num",
        Field::EvtNum,
        Type::Number,
        "A number of at least 1 that grows with time on a node: the kernel's monotonic clock at the event, in nanoseconds. Falco's is a per-capture counter; both make Falco's `evt.num=0` (never true) and `evt.num>=0` (always true) idioms work.",
    ),
    spec(
        "evt.type",
        Field::EvtType,
        Type::Text,
        "The syscall (`openat`, `execve`); rules are indexed by it.",
    ),
    spec(
        "evt.dir",
        Field::EvtDir,
        Type::Text,
        "Always `<`: every event is a syscall's exit.",
    ),
    spec(
        "evt.res",
        Field::EvtRes,
        Type::Text,
        "`SUCCESS`, or the error's name (`EACCES`) when the syscall failed.",
    ),
    spec(
        "evt.rawres",
        Field::EvtRawRes,
        Type::Number,
        "The syscall's return value.",
    ),
    spec(
        "evt.failed",
        Field::EvtFailed,
        Type::Bool,
        "Whether the syscall failed (return value below 0).",
    ),
    spec(
        "evt.time",
        Field::EvtTime,
        Type::Time,
        "Wall-clock time of the event.",
    ),
    spec(
        "evt.time.iso8601",
        Field::EvtTime,
        Type::Time,
        "Same as `evt.time`.",
    ),
    spec(
        "evt.rawtime",
        Field::EvtRawTime,
        Type::Number,
        "Wall-clock time in nanoseconds since the Unix epoch.",
    ),
    spec(
        "evt.hostname",
        Field::EvtHostname,
        Type::Text,
        "The node the collector runs on.",
    ),
    spec(
        "evt.is_open_read",
        Field::EvtIsOpenRead,
        Type::Bool,
        "An open for reading (opens only; absent for other events).",
    ),
    spec(
        "evt.is_open_write",
        Field::EvtIsOpenWrite,
        Type::Bool,
        "An open for writing (opens only).",
    ),
    spec(
        "evt.is_open_exec",
        Field::EvtIsOpenExec,
        Type::Bool,
        "An open whose mode grants execute permission (opens only).",
    ),
    Spec {
        name: "evt.arg",
        form: Form::Keyed(Field::EvtArg),
        kind: Type::Text,
        meaning: "A syscall argument by Falco's parameter name: `path`, `pathname`, `filename`, `name`, `oldpath`, `newpath`, `linkpath`, `target`, `dev`, `dir`, `put_old`, `type`, `fstype`, `flags` (open and namespace flags by name), `nstype`, `mode` (mode bits by name), `cap_effective`, `cap_permitted`, `fd`, `newfd`, `pid`, `sig`, `request`, `cmd`, `option`, `uid`/`gid` (`ruid`, `euid`, `suid`, `rgid`, `egid`, `sgid`), `domain`, `protocol`, `prot`, `res`, `res_or_fd`, `status`. Other names are unsupported; positional `evt.arg[N]` too.",
    },
    spec(
        "proc.name",
        Field::ProcName,
        Type::Text,
        "The acting process's name (its `comm`, at most 15 characters).",
    ),
    spec(
        "proc.exe",
        Field::ProcExe,
        Type::Text,
        "The first command-line argument (`argv[0]`).",
    ),
    spec(
        "proc.exepath",
        Field::ProcExePath,
        Type::Text,
        "The full path of the process's executable.",
    ),
    spec(
        "proc.cmdline",
        Field::ProcCmdline,
        Type::Text,
        "The name followed by the arguments (`sh -c id`).",
    ),
    spec(
        "proc.args",
        Field::ProcArgs,
        Type::Text,
        "The arguments after `argv[0]`, separated by blanks.",
    ),
    spec(
        "proc.pid",
        Field::ProcPid,
        Type::Number,
        "Process id (in the host's pid namespace).",
    ),
    spec(
        "proc.ppid",
        Field::ProcPpid,
        Type::Number,
        "Parent process id.",
    ),
    spec("proc.cwd", Field::ProcCwd, Type::Text, "Working directory."),
    spec(
        "proc.tty",
        Field::ProcTty,
        Type::Number,
        "Controlling terminal's device number; 0 without one.",
    ),
    spec(
        "proc.loginuid",
        Field::UserLoginUid,
        Type::Number,
        "Audit login uid; -1 for a process that never logged in.",
    ),
    spec(
        "proc.is_exe_from_memfd",
        Field::ProcIsExeFromMemfd,
        Type::Bool,
        "The executable is an anonymous memory file (`memfd_create`).",
    ),
    spec(
        "proc.is_container_runtime_setup",
        Field::ProcIsContainerRuntimeSetup,
        Type::Bool,
        "Vigil's own: a container runtime's set-up inside the container's cgroup, before the image's program runs, judged by lineage, not by name.",
    ),
    spec(
        "proc.pname",
        Field::AncestorName(Some(1)),
        Type::Text,
        "The parent's name.",
    ),
    spec(
        "proc.pexe",
        Field::AncestorExe(Some(1)),
        Type::Text,
        "The parent's `argv[0]`.",
    ),
    spec(
        "proc.pexepath",
        Field::AncestorExePath(Some(1)),
        Type::Text,
        "The parent's executable path.",
    ),
    spec(
        "proc.pcmdline",
        Field::AncestorCmdline(1),
        Type::Text,
        "The parent's command line.",
    ),
    Spec {
        name: "proc.aname",
        form: Form::Indexed(Field::AncestorName),
        kind: Type::List,
        meaning: "Ancestors' names; `[N]` one of them (0: the process, 1: its parent), a string.",
    },
    Spec {
        name: "proc.apid",
        form: Form::Indexed(Field::AncestorPid),
        kind: Type::List,
        meaning: "Ancestors' pids; `[N]` one of them, a number.",
    },
    Spec {
        name: "proc.aexe",
        form: Form::Indexed(Field::AncestorExe),
        kind: Type::List,
        meaning: "Ancestors' `argv[0]`; `[N]` one of them, a string.",
    },
    Spec {
        name: "proc.aexepath",
        form: Form::Indexed(Field::AncestorExePath),
        kind: Type::List,
        meaning: "Ancestors' executable paths; `[N]` one of them, a string.",
    },
    spec("thread.tid", Field::ThreadTid, Type::Number, "Thread id."),
    spec(
        "thread.cap_effective",
        Field::ThreadCapEffective,
        Type::Text,
        "Effective capabilities by name, separated by blanks (`CAP_CHOWN CAP_SYS_ADMIN`).",
    ),
    spec("user.uid", Field::UserUid, Type::Number, "User id."),
    spec(
        "user.name",
        Field::UserName,
        Type::Text,
        "User name: known for id 0 (`root`) only, absent otherwise.",
    ),
    spec(
        "user.loginuid",
        Field::UserLoginUid,
        Type::Number,
        "Audit login uid; -1 for a process that never logged in.",
    ),
    spec(
        "user.loginname",
        Field::UserLoginName,
        Type::Text,
        "Login user's name: `root` for id 0 only, absent otherwise.",
    ),
    spec("group.gid", Field::GroupGid, Type::Number, "Group id."),
    spec(
        "group.name",
        Field::GroupName,
        Type::Text,
        "Group name: `root` for id 0 only, absent otherwise.",
    ),
    spec(
        "fd.name",
        Field::FdName,
        Type::Text,
        "The file's path (opens and every path-taking syscall) as resolved: from the kernel's own result for a successful open (symlinks, `..`, `/proc/self/root` already followed), else made absolute and normalised (`.`, `..`, `//`); or the connection as `client:port->server:port`.",
    ),
    spec(
        "fd.nameraw",
        Field::FdNameRaw,
        Type::Text,
        "The path argument exactly as the process passed it, where `fd.name` is a path argument (not a rename's or link's new name).",
    ),
    spec(
        "fd.dev",
        Field::FdDev,
        Type::Number,
        "Device of the file opened or executed, as stat(2) reports `st_dev`; absent when unknown.",
    ),
    spec(
        "fd.ino",
        Field::FdIno,
        Type::Number,
        "Inode of the file opened or executed: the same for every hard link to it; absent when unknown.",
    ),
    spec(
        "fd.directory",
        Field::FdDirectory,
        Type::Text,
        "The directory part of a file's path.",
    ),
    spec(
        "fd.filename",
        Field::FdFilename,
        Type::Text,
        "The last component of a file's path.",
    ),
    spec(
        "fd.typechar",
        Field::FdTypeChar,
        Type::Text,
        "One letter for the descriptor's kind: `f` file, `d` directory, `4`/`6` IPv4/IPv6 socket, `u` unix socket, `p` pipe, `o` other.",
    ),
    spec(
        "fd.type",
        Field::FdType,
        Type::Text,
        "The descriptor's kind: `file`, `directory`, `ipv4`, `ipv6`, `unix`, `pipe`, `memfd`, `other`.",
    ),
    spec(
        "fd.num",
        Field::FdNum,
        Type::Number,
        "The descriptor: an open's result, otherwise the fd argument.",
    ),
    spec(
        "fd.sip",
        Field::FdIp(Side::Server),
        Type::Ip,
        "Server address of the connection (the peer of a connect, us for accept).",
    ),
    spec(
        "fd.cip",
        Field::FdIp(Side::Client),
        Type::Ip,
        "Client address of the connection.",
    ),
    spec(
        "fd.rip",
        Field::FdIp(Side::Remote),
        Type::Ip,
        "Remote (peer) address.",
    ),
    spec(
        "fd.lip",
        Field::FdIp(Side::Local),
        Type::Ip,
        "Local address.",
    ),
    spec(
        "fd.ip",
        Field::FdIp(Side::Any),
        Type::Ip,
        "Either end's address.",
    ),
    spec(
        "fd.sport",
        Field::FdPort(Side::Server),
        Type::Number,
        "Server port.",
    ),
    spec(
        "fd.cport",
        Field::FdPort(Side::Client),
        Type::Number,
        "Client port.",
    ),
    spec(
        "fd.rport",
        Field::FdPort(Side::Remote),
        Type::Number,
        "Remote (peer) port.",
    ),
    spec(
        "fd.lport",
        Field::FdPort(Side::Local),
        Type::Number,
        "Local port.",
    ),
    spec(
        "fd.port",
        Field::FdPort(Side::Any),
        Type::Number,
        "Either end's port.",
    ),
    spec(
        "fd.snet",
        Field::FdNet(Side::Server),
        Type::Network,
        "Server address, compared by network.",
    ),
    spec(
        "fd.cnet",
        Field::FdNet(Side::Client),
        Type::Network,
        "Client address, compared by network.",
    ),
    spec(
        "fd.rnet",
        Field::FdNet(Side::Remote),
        Type::Network,
        "Remote address, compared by network.",
    ),
    spec(
        "fd.lnet",
        Field::FdNet(Side::Local),
        Type::Network,
        "Local address, compared by network.",
    ),
    spec(
        "fd.net",
        Field::FdNet(Side::Any),
        Type::Network,
        "Either end's address, compared by network.",
    ),
    spec(
        "fd.l4proto",
        Field::FdL4Proto,
        Type::Text,
        "`tcp`, `udp`, `raw` or `icmp`, from socket(2)'s arguments.",
    ),
    spec(
        "fd.sockfamily",
        Field::FdSockFamily,
        Type::Text,
        "`ip` or `unix`.",
    ),
    spec(
        "container.id",
        Field::ContainerId,
        Type::Text,
        "The container's 12-character short id; `host` outside containers.",
    ),
    spec(
        "container.full_id",
        Field::ContainerFullId,
        Type::Text,
        "The container's full runtime id; absent outside containers.",
    ),
    spec(
        "container.name",
        Field::ContainerName,
        Type::Text,
        "The container's name in its pod.",
    ),
    spec(
        "container.image",
        Field::ContainerImage,
        Type::Text,
        "The container's image as the pod names it.",
    ),
    spec(
        "container.image.repository",
        Field::ContainerImageRepository,
        Type::Text,
        "The image without its tag or digest (`ghcr.io/acme/web`).",
    ),
    spec(
        "container.image.tag",
        Field::ContainerImageTag,
        Type::Text,
        "The image's tag (`1.4`).",
    ),
    spec(
        "k8s.ns.name",
        Field::K8sNsName,
        Type::Text,
        "The pod's namespace.",
    ),
    spec(
        "k8s.pod.name",
        Field::K8sPodName,
        Type::Text,
        "The pod's name.",
    ),
    spec(
        "k8s.pod.uid",
        Field::K8sPodUid,
        Type::Text,
        "The pod's uid (from its cgroup path).",
    ),
    spec(
        "k8s.pod.labels",
        Field::K8sPodLabels,
        Type::List,
        "The pod's labels as `key:value`.",
    ),
    Spec {
        name: "k8s.pod.label",
        form: Form::Keyed(Field::K8sPodLabel),
        kind: Type::Text,
        meaning: "The value of the pod's label KEY.",
    },
    spec(
        "k8s.pod.sa.name",
        Field::K8sPodServiceAccount,
        Type::Text,
        "The pod's service account.",
    ),
];

/// Whether a field yields numbers (then `=`, `<`, `in` compare numerically).
pub fn is_numeric(field: &Field) -> bool {
    matches!(
        field,
        Field::EvtNum
            | Field::EvtRawRes
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
            | Field::FdDev
            | Field::FdIno
            | Field::FdPort(_)
    )
}

/// The fields reference, `docs/rules/fields.md`: generated from [`FIELDS`]
/// and [`UNSUPPORTED`] (`vigil-detectors rules fields --markdown`), and a
/// test keeps the checked-in copy equal to it.
pub fn reference() -> String {
    let cell = |text: &str| text.replace('|', "\\|");
    let mut out = String::from(
        "# Rule fields\n\n\
         <!-- Generated from vigil_rules::fields::FIELDS by \
         `vigil-detectors rules fields --markdown > docs/rules/fields.md`; do not edit. -->\n\n\
         The fields a Vigil rule's condition, exceptions and output may use. A field \
         with no value for an event is absent: every comparison on it is false (`not` \
         of it true) and outputs print `<NA>`.\n\n\
         | field | type | meaning |\n| --- | --- | --- |\n",
    );
    for spec in FIELDS {
        let names: Vec<String> = spec
            .syntax()
            .split(", ")
            .map(|n| format!("`{n}`"))
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            names.join(", "),
            spec.kind.name(),
            cell(spec.meaning)
        ));
    }
    out.push_str(
        "\n## Unsupported fields\n\n\
         Falco fields Vigil's events do not carry. A rule whose condition or exceptions \
         need one is skipped and named at load (a warning in `rules validate`, the log \
         and `vigil_detectors_rules_skipped`), never evaluated; in an output it prints \
         `<NA>`. `b64()` is reported the same way. A name in neither table is an unknown \
         field: the rule is refused with its file, line and column, unless it says \
         `skip-if-unknown-filter: true`.\n\n\
         | field | why |\n| --- | --- |\n",
    );
    for (name, why) in UNSUPPORTED {
        let name = if *name == "evt.arg" {
            "evt.arg[N]"
        } else {
            name
        };
        out.push_str(&format!("| `{name}` | {} |\n", cell(why)));
    }
    out
}

/// Why a field in [`UNSUPPORTED`] (or an `evt.arg` name) has no value here.
pub fn unsupported_reason(name: &str) -> &'static str {
    if name.starts_with("evt.arg.") {
        return "this syscall argument is not carried";
    }
    if name == crate::compile::B64 {
        return "base64 decoding is not implemented";
    }
    UNSUPPORTED
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("not provided by Vigil's events", |(_, why)| why)
}

fn is_unsupported(base: &str) -> bool {
    UNSUPPORTED.iter().any(|(n, _)| *n == base)
}

impl Field {
    /// Looks a field up by its Falco name, including `[argument]` forms.
    pub fn parse(name: &str) -> Option<Field> {
        let (base, argument) = match name.split_once('[') {
            Some((base, rest)) => (base, Some(rest.strip_suffix(']')?)),
            None => (name, None),
        };
        if let Some(arg) = base.strip_prefix("evt.arg.") {
            return (argument.is_none() && !arg.is_empty()).then(|| Field::arg(arg));
        }
        if base == "evt.arg" {
            return match argument {
                // Positional arguments are not carried.
                Some(a) if a.parse::<usize>().is_ok() => Some(Field::Unsupported(base.into())),
                Some(a) if !a.is_empty() => Some(Field::arg(a)),
                _ => None,
            };
        }
        let spec = FIELDS.iter().find(|s| s.name == base);
        match (spec.map(|s| &s.form), argument) {
            (Some(Form::Plain(field)), None) => Some(field.clone()),
            (Some(Form::Indexed(make)), None) => Some(make(None)),
            (Some(Form::Indexed(make)), Some(index)) => index.parse().ok().map(|n| make(Some(n))),
            (Some(Form::Keyed(make)), Some(key)) if !key.is_empty() => Some(make(key.to_owned())),
            (Some(_), _) => None,
            (None, _) => is_unsupported(base).then(|| Field::Unsupported(base.to_owned())),
        }
    }

    /// `evt.arg.<name>`: a name the events carry, or unsupported.
    fn arg(name: &str) -> Field {
        if crate::args::NAMES.contains(&name) {
            Field::EvtArg(name.to_owned())
        } else {
            Field::Unsupported(format!("evt.arg.{name}"))
        }
    }

    /// The value of this field for `event`.
    pub fn extract<'a>(&self, event: &'a Event) -> Value<'a> {
        match self {
            Field::EvtNum => num(event.kernel_time_ns.max(1)),
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
            Field::FdNameRaw => fd_name_raw(event),
            Field::FdDev => file_identity(event, |a| a.file_dev),
            Field::FdIno => file_identity(event, |a| a.file_inode),
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

/// `fd.nameraw`: the argument behind `fd.name` when `fd.name` is the path
/// argument; an event from before `path_raw` existed has only the one.
fn fd_name_raw(event: &Event) -> Value<'_> {
    let Some(args) = event.args.as_ref() else {
        return Value::Absent;
    };
    match crate::fd::path(event) {
        Some(path) if path == args.path && !args.path_raw.is_empty() => text(&args.path_raw),
        Some(path) if path == args.path => text(path),
        _ => Value::Absent,
    }
}

/// `fd.dev`, `fd.ino`: set by the kernel for opens and execs; 0 is unknown.
fn file_identity(event: &Event, part: impl Fn(&vigil_proto::v1::Args) -> u64) -> Value<'_> {
    match event.args.as_ref().map(part) {
        Some(0) | None => Value::Absent,
        Some(value) => i64::try_from(value).map_or(Value::Absent, Value::Num),
    }
}

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
    fn fd_name_is_the_resolved_path_and_nameraw_the_argument() {
        let open = Event {
            r#type: EventType::Open as i32,
            args: Some(Args {
                path: "/etc/shadow".into(),
                path_raw: "/proc/self/root/etc//shadow".into(),
                file_dev: 2049,
                file_inode: 131,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(get("fd.name", &open).as_deref(), Some("/etc/shadow"));
        assert_eq!(
            get("fd.nameraw", &open).as_deref(),
            Some("/proc/self/root/etc//shadow")
        );
        assert_eq!(get("fd.dev", &open).as_deref(), Some("2049"));
        assert_eq!(get("fd.ino", &open).as_deref(), Some("131"));

        // An event from before path_raw: the one path stands for both.
        let mut old = open.clone();
        old.args = Some(Args {
            path: "/etc/passwd".into(),
            ..Default::default()
        });
        assert_eq!(get("fd.nameraw", &old).as_deref(), Some("/etc/passwd"));
        assert_eq!(get("fd.ino", &old), None);

        // A rename's fd.name is its new name, which has no raw form here.
        let rename = Event {
            r#type: EventType::Rename as i32,
            args: Some(Args {
                path: "/tmp/a".into(),
                path_raw: "a".into(),
                target_path: "/tmp/b".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(get("fd.name", &rename).as_deref(), Some("/tmp/b"));
        assert_eq!(get("fd.nameraw", &rename), None);
    }

    #[test]
    fn unknown_and_unsupported_names() {
        assert_eq!(Field::parse("proc.nmae"), None);
        assert_eq!(Field::parse("proc.aname[x]"), None);
        assert_eq!(
            Field::parse("proc.env[HOME]"),
            Some(Field::Unsupported("proc.env".into()))
        );
        assert_eq!(
            Field::parse("evt.arg[0]"),
            Some(Field::Unsupported("evt.arg".into()))
        );
        assert_eq!(
            Field::parse("evt.arg.data"),
            Some(Field::Unsupported("evt.arg.data".into()))
        );
        assert_eq!(Field::parse("evt.arg[path]"), Field::parse("evt.arg.path"));
        assert_eq!(Field::parse("k8s.pod.label"), None);
        let e = exec();
        assert_eq!(get("container.privileged", &e), None);
    }

    #[test]
    fn every_form_the_table_documents_parses_with_its_type() {
        for spec in FIELDS {
            for written in spec.syntax().split(", ") {
                let example = written
                    .replace("[N]", "[1]")
                    .replace("NAME", "path")
                    .replace("[KEY]", "[app]");
                let field = Field::parse(&example);
                assert!(
                    field
                        .as_ref()
                        .is_some_and(|f| !matches!(f, Field::Unsupported(_))),
                    "{example}: {field:?}"
                );
            }
            if let Form::Plain(field) = &spec.form {
                assert_eq!(
                    is_numeric(field),
                    spec.kind == Type::Number,
                    "{}: the table's type and the comparisons disagree",
                    spec.name
                );
            }
        }
        // `evt.arg` by name is supported, by position not.
        for (name, _) in UNSUPPORTED.iter().filter(|(n, _)| *n != "evt.arg") {
            assert!(
                FIELDS.iter().all(|s| s.name != *name),
                "{name} is both supported and not"
            );
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
