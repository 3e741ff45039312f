//! `evt.arg.<name>`: Falco's per-syscall parameter names mapped onto
//! `vigil_proto::v1::Args`. A known name is absent for a syscall that has
//! no such parameter; names outside [`NAMES`] are unsupported fields.

use std::borrow::Cow;

use vigil_proto::v1::{Event, EventType};

use crate::fields::{Value, capabilities};

/// open(2) flags as Falco prints them (`O_WRONLY|O_CREAT|O_TRUNC`), so
/// `evt.arg.flags contains O_TRUNC` works.
const OPEN_FLAGS: &[(u32, &str)] = &[
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o10000, "O_DSYNC"),
    (0o40000, "O_DIRECT"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o10000000, "O_PATH"),
    (0o20000000, "O_TMPFILE"),
];

/// Namespace flags of clone/unshare/setns.
const CLONE_FLAGS: &[(u32, &str)] = &[
    (0x0000_0100, "CLONE_VM"),
    (0x0000_0200, "CLONE_FS"),
    (0x0002_0000, "CLONE_NEWNS"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
];

/// File mode bits as Falco prints them (`S_IXUSR|S_ISUID`), so
/// `evt.arg.mode contains S_ISUID` works.
const MODE_BITS: &[(u32, &str)] = &[
    (0o4000, "S_ISUID"),
    (0o2000, "S_ISGID"),
    (0o1000, "S_ISVTX"),
    (0o400, "S_IRUSR"),
    (0o200, "S_IWUSR"),
    (0o100, "S_IXUSR"),
    (0o040, "S_IRGRP"),
    (0o020, "S_IWGRP"),
    (0o010, "S_IXGRP"),
    (0o004, "S_IROTH"),
    (0o002, "S_IWOTH"),
    (0o001, "S_IXOTH"),
];

/// Every parameter name [`extract`] knows; other names are unsupported.
pub const NAMES: &[&str] = &[
    "name",
    "path",
    "pathname",
    "filename",
    "oldpath",
    "dev",
    "target",
    "newpath",
    "linkpath",
    "dir",
    "put_old",
    "type",
    "fstype",
    "flags",
    "nstype",
    "mode",
    "cap_effective",
    "cap_permitted",
    "fd",
    "newfd",
    "pid",
    "sig",
    "request",
    "cmd",
    "option",
    "uid",
    "ruid",
    "gid",
    "rgid",
    "euid",
    "egid",
    "suid",
    "sgid",
    "domain",
    "protocol",
    "prot",
    "res",
    "res_or_fd",
    "status",
];

pub fn extract<'a>(event: &'a Event, name: &str) -> Value<'a> {
    let Some(args) = event.args.as_ref() else {
        return Value::Absent;
    };
    let kind = event.r#type();
    let text = |s: &'a str| {
        if s.is_empty() {
            Value::Absent
        } else {
            Value::Str(Cow::Borrowed(s))
        }
    };
    use EventType as T;
    match (name, kind) {
        ("name", T::MemfdCreate | T::ModuleLoad | T::ModuleUnload | T::Prctl) => text(&args.name),
        ("path" | "pathname" | "filename" | "name" | "oldpath" | "dev" | "target", _)
            if kind != T::Symlink || name == "target" =>
        {
            text(&args.path)
        }
        ("newpath" | "linkpath" | "dir" | "put_old", _) => text(&args.target_path),
        ("type" | "fstype", T::Mount) => text(&args.fs_type),
        ("flags", T::Open) => Value::Str(Cow::Owned(open_flags(args.flags))),
        ("flags", T::Clone | T::Unshare | T::Setns) => {
            Value::Str(Cow::Owned(named_flags(args.flags, CLONE_FLAGS)))
        }
        ("flags" | "nstype", _) => Value::Num(args.flags.into()),
        ("mode", T::Chmod | T::Open | T::Mkdir) => {
            Value::Str(Cow::Owned(named_flags(args.mode, MODE_BITS)))
        }
        ("mode", _) => Value::Num(args.mode.into()),
        ("cap_effective", _) => Value::Str(Cow::Owned(capabilities(args.cap_effective))),
        ("cap_permitted", _) => Value::Str(Cow::Owned(capabilities(args.cap_permitted))),
        ("type", T::Socket) => Value::Num(args.socket_type.into()),
        ("fd", _) => Value::Num(args.fd.into()),
        ("newfd", _) => Value::Num(args.new_fd.into()),
        ("pid", _) => Value::Num(args.target_pid.into()),
        ("sig", _) => Value::Num(args.signal.into()),
        ("request" | "cmd" | "option", _) => Value::Num(args.request),
        ("uid" | "ruid" | "gid" | "rgid", _) => id(&args.ids, 0),
        ("euid" | "egid", _) => id(&args.ids, 1),
        ("suid" | "sgid", _) => id(&args.ids, 2),
        ("domain", _) => Value::Num(args.domain.into()),
        ("protocol", _) => Value::Num(args.protocol.into()),
        ("prot", _) => Value::Num(args.prot.into()),
        ("res" | "res_or_fd", _) => Value::Num(event.return_value),
        ("status", T::Exit) => Value::Num(args.exit_code.into()),
        _ => Value::Absent,
    }
}

fn id(ids: &[i64], index: usize) -> Value<'static> {
    ids.get(index).map_or(Value::Absent, |id| Value::Num(*id))
}

pub fn open_flags(flags: u32) -> String {
    let access = match flags & crate::fields::O_ACCMODE {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        _ => "O_RDWR",
    };
    let rest = named_flags(flags, OPEN_FLAGS);
    if rest.is_empty() {
        access.to_owned()
    } else {
        format!("{access}|{rest}")
    }
}

fn named_flags(flags: u32, names: &[(u32, &str)]) -> String {
    names
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_print_like_falco() {
        assert_eq!(open_flags(0), "O_RDONLY");
        assert_eq!(open_flags(0o1101), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(named_flags(0x4000_0000, CLONE_FLAGS), "CLONE_NEWNET");
        assert_eq!(
            named_flags(0o4755, MODE_BITS),
            "S_ISUID|S_IRUSR|S_IWUSR|S_IXUSR|S_IRGRP|S_IXGRP|S_IROTH|S_IXOTH"
        );
    }
}
