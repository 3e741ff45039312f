//! Property tests of the kernel record: what the BPF programs lay out at
//! the ABI's offsets (fuzz's `kernel::encode`), the collector's decoder
//! reads back field by field; a record cut short is an error that says so.

use proptest::{collection::vec, prelude::*};
use vigil_collector::{
    decode::{self, DecodeError},
    kernel::{abi, syscalls},
};
use vigil_fuzz::kernel::{self, Body, HeaderFields};

fn header() -> impl Strategy<Value = HeaderFields> {
    (
        (
            any::<u8>(),
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
        ),
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
        (
            any::<u64>(),
            any::<i64>(),
            vec(any::<u8>(), 0..20),
            any::<u32>(),
        ),
    )
        .prop_map(
            |(
                (flags, pid, ktime_ns, tid, ppid),
                (uid, gid, loginuid, mnt_ns),
                (cgroup_id, ret, comm, exec_id),
            )| HeaderFields {
                flags,
                pid,
                ktime_ns,
                tid,
                ppid,
                uid,
                gid,
                loginuid,
                mnt_ns,
                cgroup_id,
                ret,
                comm: kernel::comm(&comm),
                exec_id,
                ..HeaderFields::default()
            },
        )
}

/// Text as the kernel copies it: any bytes, sometimes longer than the buffer.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..=max + 8),
        "[ -~]{0,40}".prop_map(String::into_bytes)
    ]
}

fn syscall_numbers() -> Vec<u16> {
    kernel::reported_syscalls().collect()
}

fn body() -> impl Strategy<Value = (Option<u16>, Body)> {
    prop_oneof![
        (bytes(abi::PATH_LEN), bytes(abi::ARGV_LEN))
            .prop_map(|(filename, argv)| (None, Body::Exec { filename, argv })),
        any::<i32>().prop_map(|exit_code| (None, Body::Exit { exit_code })),
        (
            proptest::sample::select(syscall_numbers()),
            any::<[u64; 6]>(),
            bytes(abi::PATH_LEN),
            bytes(abi::PATH_LEN),
            vec(any::<u8>(), 0..=abi::SOCKADDR_LEN),
            0..10u8,
        )
            .prop_map(|(nr, args, path, path2, sockaddr, fd_kind)| {
                (
                    Some(nr),
                    Body::Syscall {
                        args,
                        path,
                        path2,
                        sockaddr,
                        fd_kind,
                    },
                )
            }),
    ]
}

/// What the decoder makes of C text: up to the first NUL, lossy UTF-8.
fn c_text(bytes: &[u8], capacity: usize) -> String {
    let bytes = &bytes[..bytes.len().min(capacity)];
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn header_and_body_fields_decode_as_encoded(header in header(), (nr, body) in body()) {
        let header = HeaderFields { syscall: nr.unwrap_or(header.syscall), ..header };
        let record = kernel::encode(&header, &body);
        let decoded = decode::decode(&record).expect("a well-formed record decodes");
        let event = &decoded.event;
        prop_assert_eq!(
            (event.pid, event.tid, event.ppid, event.uid, event.gid, event.login_uid),
            (header.pid, header.tid, header.ppid, header.uid, header.gid, header.loginuid)
        );
        prop_assert_eq!(
            (event.kernel_time_ns, event.cgroup_id, event.return_value),
            (header.ktime_ns, header.cgroup_id, header.ret)
        );
        prop_assert_eq!(&event.comm, &c_text(&header.comm, abi::COMM_LEN));
        prop_assert_eq!(decoded.flags, header.flags);
        prop_assert_eq!(
            decoded.lineage.map(|lineage| (lineage.mnt_ns, lineage.exec_id)),
            Some((header.mnt_ns, header.exec_id))
        );
        let args = event.args.clone().unwrap_or_default();
        match &body {
            Body::Exec { filename, argv } => {
                prop_assert_eq!(&args.path, &c_text(filename, abi::PATH_LEN));
                let kept = &argv[..argv.len().min(abi::ARGV_LEN)];
                let joined: Vec<u8> = args.argv.join("\0").into_bytes();
                let expected = String::from_utf8_lossy(kept.strip_suffix(&[0]).unwrap_or(kept));
                prop_assert_eq!(String::from_utf8_lossy(&joined), expected);
            }
            Body::Exit { exit_code } => {
                prop_assert_eq!(args.exit_code, *exit_code);
                prop_assert_eq!(event.syscall.as_str(), syscalls::PROCESS_EXIT);
            }
            Body::Syscall { .. } => {
                let nr = nr.expect("syscall bodies carry a number");
                let syscall = syscalls::by_nr(nr).expect("a reported syscall");
                prop_assert_eq!(event.syscall.as_str(), syscall.name);
                prop_assert_eq!(event.r#type, i32::from(syscall.event_type));
            }
        }
    }

    #[test]
    fn every_cut_record_is_a_truncation(header in header(), (nr, body) in body(), cut in 1usize..2048) {
        let header = HeaderFields { syscall: nr.unwrap_or(header.syscall), ..header };
        let record = kernel::encode(&header, &body);
        let len = record.len().saturating_sub(cut);
        let error = decode::decode(&record[..len]).expect_err("a cut record is refused");
        let DecodeError::Truncated { len: seen, expected, .. } = error else {
            panic!("cut to {len} bytes: {error}");
        };
        prop_assert_eq!(seen, len);
        prop_assert!(expected > len);
    }

    #[test]
    fn unreported_syscalls_are_named(header in header(), nr in any::<u16>()) {
        prop_assume!(syscalls::by_nr(nr).is_none());
        let body = Body::Syscall { args: [0; 6], path: vec![], path2: vec![], sockaddr: vec![], fd_kind: 0 };
        let record = kernel::encode(&HeaderFields { syscall: nr, ..header }, &body);
        prop_assert_eq!(decode::decode(&record), Err(DecodeError::UnknownSyscall { nr }));
    }

    #[test]
    fn any_bytes_keep_the_decoder_invariants(bytes in vec(any::<u8>(), 0..2048), kind in 0..8u8) {
        let mut bytes = bytes;
        if let Some(first) = bytes.first_mut() {
            *first = kind;
        }
        kernel::check(&bytes);
    }
}

#[test]
fn every_seed_record_is_checked() {
    // The checked-in seeds are records this build still decodes.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/kernel_record");
    let mut decoded = 0;
    for entry in std::fs::read_dir(&dir).expect("the seed corpus is checked in") {
        let bytes = std::fs::read(entry.expect("a directory entry").path()).expect("a seed");
        kernel::check(&bytes);
        decoded += usize::from(decode::decode(&bytes).is_ok());
    }
    assert!(
        decoded >= 3,
        "only {decoded} seeds decode in {}",
        dir.display()
    );
}
