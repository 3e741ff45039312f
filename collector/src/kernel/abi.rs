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
pub const ADDR_LEN: usize = 16;
pub const UNIX_PATH_LEN: usize = 108;

/// `enum vigil_kind`: the first byte of every record.
pub const KIND_EXEC: u8 = 1;
pub const KIND_OPEN: u8 = 2;
pub const KIND_CONNECT: u8 = 3;

/// `enum vigil_flag`, bits of `Header::flags`.
pub const FLAG_PATH_TRUNCATED: u8 = 1 << 0;
pub const FLAG_ARGV_TRUNCATED: u8 = 1 << 1;
pub const FLAG_READ_FAILED: u8 = 1 << 2;

/// `enum vigil_drop_reason`: indexes of the per-CPU `drops` map, with the
/// label each one gets in metrics.
pub const DROP_RINGBUF_FULL: u32 = 0;
pub const DROP_PENDING_FULL: u32 = 1;
pub const DROP_REASONS: [(u32, &str); 2] = [
    (DROP_RINGBUF_FULL, "ringbuf_full"),
    (DROP_PENDING_FULL, "pending_full"),
];

/// `AT_FDCWD`: an open's path is relative to the working directory.
pub const AT_FDCWD: i32 = -100;

/// Address families as the kernel numbers them.
pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// `struct vigil_header`.
#[repr(C)]
pub struct Header {
    pub kind: u8,
    pub flags: u8,
    pub reserved: u16,
    pub pid: u32,
    pub ktime_ns: u64,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub loginuid: u32,
    pub reserved2: u32,
    pub cgroup_id: u64,
    pub ret: i64,
    pub comm: [u8; COMM_LEN],
}

/// `struct vigil_exec_body`.
#[repr(C)]
pub struct ExecBody {
    pub filename_len: u32,
    pub argv_len: u32,
    pub filename: [u8; PATH_LEN],
    pub argv: [u8; ARGV_LEN],
}

/// `struct vigil_open_body`.
#[repr(C)]
pub struct OpenBody {
    pub dirfd: i32,
    pub flags: u32,
    pub mode: u32,
    pub path_len: u32,
    pub path: [u8; PATH_LEN],
}

/// `struct vigil_connect_body`.
#[repr(C)]
pub struct ConnectBody {
    pub fd: i32,
    pub family: u16,
    pub port: u16,
    pub addrlen: u32,
    pub addr: [u8; ADDR_LEN],
    pub unix_path: [u8; UNIX_PATH_LEN],
}

/// `struct vigil_exec_record`.
#[repr(C)]
pub struct ExecRecord {
    pub hdr: Header,
    pub exec: ExecBody,
}

/// `struct vigil_open_record`.
#[repr(C)]
pub struct OpenRecord {
    pub hdr: Header,
    pub open: OpenBody,
}

/// `struct vigil_connect_record`.
#[repr(C)]
pub struct ConnectRecord {
    pub hdr: Header,
    pub connect: ConnectBody,
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
                kind, flags, reserved, pid, ktime_ns, tid, ppid, uid, gid, loginuid, reserved2,
                cgroup_id, ret, comm,
            ]
        ),
        layout!(
            ExecBody,
            "vigil_exec_body",
            [filename_len, argv_len, filename, argv]
        ),
        layout!(
            OpenBody,
            "vigil_open_body",
            [dirfd, flags, mode, path_len, path]
        ),
        layout!(
            ConnectBody,
            "vigil_connect_body",
            [fd, family, port, addrlen, addr, unix_path]
        ),
        layout!(ExecRecord, "vigil_exec_record", [hdr, exec]),
        layout!(OpenRecord, "vigil_open_record", [hdr, open]),
        layout!(ConnectRecord, "vigil_connect_record", [hdr, connect]),
    ]
}

/// Every mirrored enum constant, named as in C.
pub fn constants() -> Vec<(&'static str, &'static str, i64)> {
    vec![
        ("vigil_kind", "VIGIL_KIND_EXEC", i64::from(KIND_EXEC)),
        ("vigil_kind", "VIGIL_KIND_OPEN", i64::from(KIND_OPEN)),
        ("vigil_kind", "VIGIL_KIND_CONNECT", i64::from(KIND_CONNECT)),
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
        (
            "vigil_drop_reason",
            "VIGIL_DROP_RINGBUF_FULL",
            i64::from(DROP_RINGBUF_FULL),
        ),
        (
            "vigil_drop_reason",
            "VIGIL_DROP_PENDING_FULL",
            i64::from(DROP_PENDING_FULL),
        ),
        (
            "vigil_drop_reason",
            "VIGIL_DROP_REASONS",
            DROP_REASONS.len() as i64,
        ),
    ]
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
        header.fields.push(("extra", 80));
        wrong.push(StructLayout {
            c_name: "vigil_missing_record",
            size: 8,
            fields: vec![],
        });
        let problems = check::struct_mismatches(&btf, &wrong);
        let expected = [
            "struct vigil_header: C size 72, Rust size 80",
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

        let constants = [("vigil_kind", "VIGIL_KIND_OPEN", 7)];
        assert_eq!(
            check::constant_mismatches(&btf, &constants),
            ["VIGIL_KIND_OPEN: C value 2, Rust value 7"]
        );
    }
}
