//! The Rust mirror of `bpf/include/vigil_event.h`, the kernel record ABI.
//!
//! The structs are never built from bytes (that would need `unsafe`): the
//! decoders read each field at its `offset_of!` here, so these definitions
//! are the one place Rust learns the layout. The tests compare every size,
//! offset and enum value with the BTF of the compiled BPF object, so a change
//! to the header that is not mirrored here fails `cargo test` (the idea of
//! Tetragon's alignchecker).

use std::mem::{offset_of, size_of};

pub const COMM_LEN: usize = 16;
pub const PATH_LEN: usize = 256;
pub const ARGV_LEN: usize = 512;
pub const SOCKADDR_LEN: usize = 112;
pub const STR3_LEN: usize = 32;
pub const DEREF_LEN: usize = 24;
pub const LOCAL_SOCKADDR_LEN: usize = 28;
pub const NAME_SLOT: usize = 256;
pub const NAMES_START: usize = 512;
pub const RESOLVED_LEN: usize = NAMES_START + NAME_SLOT;
pub const PATH_DEPTH: usize = 32;
/// Entries of the `syscall_specs` map: syscall numbers, then two slots for
/// the process events that are not syscalls.
pub const SYSCALL_SLOTS: u32 = 512;
pub const SLOT_EXEC: u32 = 510;
pub const SLOT_EXIT: u32 = 511;
/// `Header::syscall` of a record that is no syscall.
pub const NO_SYSCALL: u16 = 0xffff;

/// `enum vigil_kind`: the first byte of every record.
pub const KIND_EXEC: u8 = 1;
pub const KIND_SYSCALL: u8 = 4;
pub const KIND_EXIT: u8 = 5;

/// `enum vigil_flag`, bits of `Header::flags`.
pub const FLAG_PATH_TRUNCATED: u8 = 1 << 0;
pub const FLAG_ARGV_TRUNCATED: u8 = 1 << 1;
pub const FLAG_READ_FAILED: u8 = 1 << 2;

/// `enum vigil_spec_flag`, bits of `SyscallSpec::flags`.
pub const SPEC_EXEC: u8 = 1 << 0;
pub const SPEC_SOCKLEN_PTR: u8 = 1 << 1;
pub const SPEC_PROT_EXEC: u8 = 1 << 2;
pub const SPEC_MAP_ANON: u8 = 1 << 3;
pub const SPEC_ANON_VMA: u8 = 1 << 4;
pub const SPEC_SOCK_LOCAL: u8 = 1 << 5;

/// `enum vigil_resolve_flag`, bits of `ResolvedPath::flags`.
pub const RESOLVE_COMPLETE: u16 = 1 << 0;
pub const RESOLVE_TRUNCATED: u16 = 1 << 1;
pub const RESOLVE_DEPTH_LIMIT: u16 = 1 << 2;
pub const RESOLVE_OUTSIDE_ROOT: u16 = 1 << 3;
pub const RESOLVE_DELETED: u16 = 1 << 4;
pub const RESOLVE_READ_FAILED: u16 = 1 << 5;

/// `enum vigil_open_nr`: the open family, whose returned descriptor the
/// kernel resolves (checked against `libc::SYS_*` in the tests).
pub const OPEN_NRS: [(&str, i64); 4] = [
    ("VIGIL_NR_OPEN", 2),
    ("VIGIL_NR_CREAT", 85),
    ("VIGIL_NR_OPENAT", 257),
    ("VIGIL_NR_OPENAT2", 437),
];

/// `enum vigil_drop_reason`: indexes of the per-CPU `drops` map, with the
/// label each one gets in metrics.
pub const DROP_RINGBUF_FULL: u32 = 0;
pub const DROP_NO_RING: u32 = 1;
pub const DROP_REASONS: [(u32, &str); 2] = [
    (DROP_RINGBUF_FULL, "ringbuf_full"),
    (DROP_NO_RING, "no_ring"),
];

/// `enum vigil_fd_kind`: the numbers of `vigil.v1.FdKind`.
pub const FD_KINDS: [(&str, u8); 9] = [
    ("VIGIL_FD_UNKNOWN", 0),
    ("VIGIL_FD_FILE", 1),
    ("VIGIL_FD_DIRECTORY", 2),
    ("VIGIL_FD_SOCKET_INET", 3),
    ("VIGIL_FD_SOCKET_INET6", 4),
    ("VIGIL_FD_SOCKET_UNIX", 5),
    ("VIGIL_FD_PIPE", 6),
    ("VIGIL_FD_MEMFD", 7),
    ("VIGIL_FD_OTHER", 8),
];

/// `AT_FDCWD`: a path is relative to the working directory.
pub const AT_FDCWD: i32 = -100;

/// Address families as the kernel numbers them.
pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// `struct vigil_syscall_spec`: how the kernel reports one syscall.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallSpec {
    pub enabled: u8,
    pub flags: u8,
    pub str_args: [u8; 3],
    pub sockaddr_arg: u8,
    pub sockaddr_len_arg: u8,
    pub fd_arg: u8,
    pub deref_arg: u8,
    pub argv_arg: u8,
    pub reserved: [u8; 2],
}

impl SyscallSpec {
    /// The map value, in the layout of the C struct (no padding).
    pub fn to_bytes(self) -> [u8; size_of::<SyscallSpec>()] {
        let [s0, s1, s2] = self.str_args;
        [
            self.enabled,
            self.flags,
            s0,
            s1,
            s2,
            self.sockaddr_arg,
            self.sockaddr_len_arg,
            self.fd_arg,
            self.deref_arg,
            self.argv_arg,
            0,
            0,
        ]
    }
}

/// `struct vigil_header`.
#[repr(C)]
pub struct Header {
    pub kind: u8,
    pub flags: u8,
    pub syscall: u16,
    pub pid: u32,
    pub ktime_ns: u64,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub loginuid: u32,
    pub mnt_ns: u32,
    pub cgroup_id: u64,
    pub ret: i64,
    pub comm: [u8; COMM_LEN],
    pub exec_id: u32,
    pub reserved2: u32,
}

/// `struct vigil_resolved_path`.
#[repr(C)]
pub struct ResolvedPath {
    pub dev: u64,
    pub ino: u64,
    pub names_len: u32,
    pub flags: u16,
    pub count: u16,
    pub names: [u8; RESOLVED_LEN],
}

/// `struct vigil_exec_body`.
#[repr(C)]
pub struct ExecBody {
    pub filename_len: u32,
    pub argv_len: u32,
    pub filename: [u8; PATH_LEN],
    pub argv: [u8; ARGV_LEN],
    pub resolved: ResolvedPath,
}

/// `struct vigil_syscall_body`.
#[repr(C)]
pub struct SyscallBody {
    pub args: [u64; 6],
    pub path_len: u32,
    pub path2_len: u32,
    pub sockaddr_len: u32,
    pub fd_kind: u8,
    pub reserved: [u8; 3],
    pub deref: [u8; DEREF_LEN],
    pub sockaddr: [u8; SOCKADDR_LEN],
    pub str3: [u8; STR3_LEN],
    pub path: [u8; PATH_LEN],
    pub path2: [u8; PATH_LEN],
    pub local_sockaddr_len: u32,
    pub local_sockaddr: [u8; LOCAL_SOCKADDR_LEN],
    pub resolved: ResolvedPath,
}

/// `struct vigil_exit_body`.
#[repr(C)]
pub struct ExitBody {
    pub exit_code: i32,
    pub reserved: u32,
}

/// `struct vigil_exec_record`.
#[repr(C)]
pub struct ExecRecord {
    pub hdr: Header,
    pub exec: ExecBody,
}

/// `struct vigil_syscall_record`.
#[repr(C)]
pub struct SyscallRecord {
    pub hdr: Header,
    pub sys: SyscallBody,
}

/// `struct vigil_exit_record`.
#[repr(C)]
pub struct ExitRecord {
    pub hdr: Header,
    pub exit: ExitBody,
}

/// A struct's size and field offsets as Rust computes them, named as in C.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructLayout {
    pub c_name: &'static str,
    pub size: usize,
    pub fields: Vec<(&'static str, usize)>,
}

macro_rules! layout {
    ($ty:ty, $c_name:literal, [$($field:ident),* $(,)?]) => {
        StructLayout {
            c_name: $c_name,
            size: size_of::<$ty>(),
            fields: vec![$((stringify!($field), offset_of!($ty, $field))),*],
        }
    };
}

/// Every mirrored struct, for the layout check.
pub fn layouts() -> Vec<StructLayout> {
    vec![
        layout!(
            Header,
            "vigil_header",
            [
                kind, flags, syscall, pid, ktime_ns, tid, ppid, uid, gid, loginuid, mnt_ns,
                cgroup_id, ret, comm, exec_id, reserved2,
            ]
        ),
        layout!(
            SyscallSpec,
            "vigil_syscall_spec",
            [
                enabled,
                flags,
                str_args,
                sockaddr_arg,
                sockaddr_len_arg,
                fd_arg,
                deref_arg,
                argv_arg,
                reserved,
            ]
        ),
        layout!(
            ExecBody,
            "vigil_exec_body",
            [filename_len, argv_len, filename, argv, resolved]
        ),
        layout!(
            ResolvedPath,
            "vigil_resolved_path",
            [dev, ino, names_len, flags, count, names]
        ),
        layout!(
            SyscallBody,
            "vigil_syscall_body",
            [
                args,
                path_len,
                path2_len,
                sockaddr_len,
                fd_kind,
                reserved,
                deref,
                sockaddr,
                str3,
                path,
                path2,
                local_sockaddr_len,
                local_sockaddr,
                resolved,
            ]
        ),
        layout!(ExitBody, "vigil_exit_body", [exit_code, reserved]),
        layout!(ExecRecord, "vigil_exec_record", [hdr, exec]),
        layout!(SyscallRecord, "vigil_syscall_record", [hdr, sys]),
        layout!(ExitRecord, "vigil_exit_record", [hdr, exit]),
    ]
}

/// Every mirrored enum constant, named as in C.
pub fn constants() -> Vec<(&'static str, &'static str, i64)> {
    let mut constants = vec![
        ("vigil_kind", "VIGIL_KIND_EXEC", i64::from(KIND_EXEC)),
        ("vigil_kind", "VIGIL_KIND_SYSCALL", i64::from(KIND_SYSCALL)),
        ("vigil_kind", "VIGIL_KIND_EXIT", i64::from(KIND_EXIT)),
        (
            "vigil_flag",
            "VIGIL_FLAG_PATH_TRUNCATED",
            i64::from(FLAG_PATH_TRUNCATED),
        ),
        (
            "vigil_flag",
            "VIGIL_FLAG_ARGV_TRUNCATED",
            i64::from(FLAG_ARGV_TRUNCATED),
        ),
        (
            "vigil_flag",
            "VIGIL_FLAG_READ_FAILED",
            i64::from(FLAG_READ_FAILED),
        ),
        ("vigil_spec_flag", "VIGIL_SPEC_EXEC", i64::from(SPEC_EXEC)),
        (
            "vigil_spec_flag",
            "VIGIL_SPEC_SOCKLEN_PTR",
            i64::from(SPEC_SOCKLEN_PTR),
        ),
        (
            "vigil_spec_flag",
            "VIGIL_SPEC_PROT_EXEC",
            i64::from(SPEC_PROT_EXEC),
        ),
        (
            "vigil_spec_flag",
            "VIGIL_SPEC_MAP_ANON",
            i64::from(SPEC_MAP_ANON),
        ),
        (
            "vigil_spec_flag",
            "VIGIL_SPEC_ANON_VMA",
            i64::from(SPEC_ANON_VMA),
        ),
        (
            "vigil_spec_flag",
            "VIGIL_SPEC_SOCK_LOCAL",
            i64::from(SPEC_SOCK_LOCAL),
        ),
        (
            "vigil_drop_reason",
            "VIGIL_DROP_RINGBUF_FULL",
            i64::from(DROP_RINGBUF_FULL),
        ),
        (
            "vigil_drop_reason",
            "VIGIL_DROP_NO_RING",
            i64::from(DROP_NO_RING),
        ),
        (
            "vigil_drop_reason",
            "VIGIL_DROP_REASONS",
            DROP_REASONS.len() as i64,
        ),
    ];
    constants.extend(
        [
            ("VIGIL_RESOLVE_COMPLETE", RESOLVE_COMPLETE),
            ("VIGIL_RESOLVE_TRUNCATED", RESOLVE_TRUNCATED),
            ("VIGIL_RESOLVE_DEPTH_LIMIT", RESOLVE_DEPTH_LIMIT),
            ("VIGIL_RESOLVE_OUTSIDE_ROOT", RESOLVE_OUTSIDE_ROOT),
            ("VIGIL_RESOLVE_DELETED", RESOLVE_DELETED),
            ("VIGIL_RESOLVE_READ_FAILED", RESOLVE_READ_FAILED),
        ]
        .map(|(name, value)| ("vigil_resolve_flag", name, i64::from(value))),
    );
    constants.extend(
        OPEN_NRS
            .iter()
            .map(|(name, nr)| ("vigil_open_nr", *name, *nr)),
    );
    constants.extend(
        FD_KINDS
            .iter()
            .map(|(name, value)| ("vigil_fd_kind", *name, i64::from(*value))),
    );
    constants
}

/// The compiled BPF object, whose BTF describes the C side of the ABI.
#[cfg(test)]
pub(crate) const BPF_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vigil.bpf.o"));

#[cfg(test)]
pub(crate) mod check {
    //! Compares the mirror with BTF. Returns every difference, so one run
    //! shows all that needs fixing.

    use libbpf_rs::btf::{Btf, HasSize as _, types};

    use super::StructLayout;

    /// Differences between `layouts` and the structs of the same name in `btf`.
    pub fn struct_mismatches(btf: &Btf<'_>, layouts: &[StructLayout]) -> Vec<String> {
        layouts
            .iter()
            .flat_map(
                |layout| match btf.type_by_name::<types::Struct<'_>>(layout.c_name) {
                    Some(c) => compare(layout, &c),
                    None => vec![format!(
                        "struct {} is not in the object's BTF",
                        layout.c_name
                    )],
                },
            )
            .collect()
    }

    fn compare(layout: &StructLayout, c: &types::Struct<'_>) -> Vec<String> {
        let name = layout.c_name;
        let mut problems = Vec::new();
        let c_size = c.size();
        if c_size != layout.size {
            problems.push(format!(
                "struct {name}: C size {c_size}, Rust size {}",
                layout.size
            ));
        }
        let c_fields: Vec<(String, usize)> = c
            .iter()
            .map(|m| {
                let name = m
                    .name
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let bits = match m.attr {
                    types::MemberAttr::Normal { offset }
                    | types::MemberAttr::BitField { offset, .. } => offset,
                };
                (name, bits as usize / 8)
            })
            .collect();
        for (field, offset) in &layout.fields {
            match c_fields.iter().find(|(n, _)| n == field) {
                Some((_, c_offset)) if c_offset != offset => problems.push(format!(
                    "{name}.{field}: C offset {c_offset}, Rust offset {offset}"
                )),
                Some(_) => {}
                None => problems.push(format!("{name}.{field}: not in the C struct")),
            }
        }
        for (field, _) in &c_fields {
            if !layout.fields.iter().any(|(n, _)| n == field) {
                problems.push(format!("{name}.{field}: not mirrored in Rust"));
            }
        }
        problems
    }

    /// Differences between Rust constants and the C enum values.
    pub fn constant_mismatches(btf: &Btf<'_>, constants: &[(&str, &str, i64)]) -> Vec<String> {
        constants
            .iter()
            .filter_map(|(enum_name, constant, value)| {
                let Some(c_enum) = btf.type_by_name::<types::Enum<'_>>(enum_name) else {
                    return Some(format!("enum {enum_name} is not in the object's BTF"));
                };
                let found = c_enum
                    .iter()
                    .find(|m| m.name.is_some_and(|n| n == *constant));
                match found {
                    Some(m) if m.value == *value => None,
                    Some(m) => Some(format!(
                        "{constant}: C value {}, Rust value {value}",
                        m.value
                    )),
                    None => Some(format!("{constant}: not in enum {enum_name}")),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use libbpf_rs::btf::Btf;

    use super::*;

    fn object_btf() -> Btf<'static> {
        Btf::from_raw("vigil.bpf.o", BPF_OBJECT)
            .expect("parse the object's BTF")
            .expect("the object has BTF (compiled with -g)")
    }

    #[test]
    fn rust_mirror_matches_the_compiled_object() {
        let btf = object_btf();
        let problems = check::struct_mismatches(&btf, &layouts());
        assert!(
            problems.is_empty(),
            "ABI mismatch:\n{}",
            problems.join("\n")
        );
        let problems = check::constant_mismatches(&btf, &constants());
        assert!(
            problems.is_empty(),
            "ABI mismatch:\n{}",
            problems.join("\n")
        );
    }

    /// The kernel writes `enum vigil_fd_kind` numbers and the decoder puts
    /// them into `Event.args.fd_kind` unchanged, so the C enum, its Rust
    /// mirror and `vigil.v1.FdKind` must name the same values, each way.
    #[test]
    fn fd_kinds_are_the_same_in_c_rust_and_the_proto() {
        use std::collections::BTreeMap;

        use libbpf_rs::btf::types;
        use vigil_proto::v1::FdKind;

        let btf = object_btf();
        let c_enum = btf
            .type_by_name::<types::Enum<'_>>("vigil_fd_kind")
            .expect("enum vigil_fd_kind in the object's BTF");
        let c: BTreeMap<String, i64> = c_enum
            .iter()
            .map(|m| {
                let name = m.name.map(|n| n.to_string_lossy().into_owned());
                (name.unwrap_or_default(), m.value)
            })
            .collect();
        let mirror: BTreeMap<String, i64> = FD_KINDS
            .iter()
            .map(|(name, value)| ((*name).to_owned(), i64::from(*value)))
            .collect();
        assert_eq!(c, mirror, "enum vigil_fd_kind (C) against FD_KINDS (Rust)");

        // VIGIL_FD_X is FD_KIND_X; the zero value is UNKNOWN in C.
        let from_c: BTreeMap<String, i64> = FD_KINDS
            .iter()
            .map(|(name, value)| {
                let proto = match *name {
                    "VIGIL_FD_UNKNOWN" => "FD_KIND_UNSPECIFIED".to_owned(),
                    other => other.replacen("VIGIL_FD_", "FD_KIND_", 1),
                };
                (proto, i64::from(*value))
            })
            .collect();
        let proto: BTreeMap<String, i64> = (0..=i32::from(u8::MAX))
            .filter_map(|value| FdKind::try_from(value).ok())
            .map(|kind| (kind.as_str_name().to_owned(), i64::from(kind as i32)))
            .collect();
        assert_eq!(from_c, proto, "FD_KINDS (C names) against vigil.v1.FdKind");
    }

    /// The kernel side knows the open family by number: the numbers must
    /// be this architecture's.
    #[test]
    fn open_numbers_are_the_architectures() {
        let libc_nrs = [
            libc::SYS_open,
            libc::SYS_creat,
            libc::SYS_openat,
            libc::SYS_openat2,
        ];
        for ((name, nr), libc_nr) in OPEN_NRS.iter().zip(libc_nrs) {
            assert_eq!(*nr, libc_nr, "{name}");
        }
    }

    #[test]
    fn layout_check_reports_a_wrong_mirror() {
        let btf = object_btf();
        let mut wrong = layouts();
        let header = wrong
            .iter_mut()
            .find(|l| l.c_name == "vigil_header")
            .unwrap();
        header.size += 8;
        header.fields.retain(|(name, _)| *name != "comm");
        header
            .fields
            .iter_mut()
            .find(|(name, _)| *name == "pid")
            .unwrap()
            .1 = 8;
        header.fields.push(("extra", 88));
        wrong.push(StructLayout {
            c_name: "vigil_missing_record",
            size: 8,
            fields: vec![],
        });
        let problems = check::struct_mismatches(&btf, &wrong);
        let expected = [
            "struct vigil_header: C size 80, Rust size 88",
            "vigil_header.pid: C offset 4, Rust offset 8",
            "vigil_header.extra: not in the C struct",
            "vigil_header.comm: not mirrored in Rust",
            "struct vigil_missing_record is not in the object's BTF",
        ];
        for line in expected {
            assert!(
                problems.iter().any(|p| p == line),
                "{line:?} missing from {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");

        let constants = [("vigil_kind", "VIGIL_KIND_SYSCALL", 7)];
        assert_eq!(
            check::constant_mismatches(&btf, &constants),
            ["VIGIL_KIND_SYSCALL: C value 4, Rust value 7"]
        );
    }
}
