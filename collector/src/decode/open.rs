//! `vigil_open_record`: open, openat, openat2 at exit, with their result.

use std::mem::offset_of;

use vigil_proto::v1::Args;

use super::{DecodeError, Decoded, Record, until_nul};
use crate::kernel::abi::{self, OpenRecord};

pub(super) fn decode(record: &Record<'_>, decoded: &mut Decoded) -> Result<(), DecodeError> {
    let path_len = record.u32(offset_of!(OpenRecord, open.path_len))?;
    let path = record.bytes(
        offset_of!(OpenRecord, open.path),
        abi::PATH_LEN,
        path_len,
        "path_len",
    )?;
    let ret = decoded.event.return_value;
    decoded.dirfd = Some(record.i32(offset_of!(OpenRecord, open.dirfd))?);
    decoded.event.args = Some(Args {
        path: until_nul(path),
        flags: record.u32(offset_of!(OpenRecord, open.flags))?,
        mode: record.u32(offset_of!(OpenRecord, open.mode))?,
        // The descriptor the open returned; -1 when it failed.
        fd: i32::try_from(ret).ok().filter(|fd| *fd >= 0).unwrap_or(-1),
        ..Args::default()
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;
    use crate::decode::{
        self,
        tests::{put, record},
    };

    fn open_record(path: &[u8], dirfd: i32, flags: u32, ret: i64) -> Vec<u8> {
        let mut bytes = record(abi::KIND_OPEN, size_of::<OpenRecord>());
        put(
            &mut bytes,
            offset_of!(OpenRecord, hdr.ret),
            &ret.to_ne_bytes(),
        );
        put(
            &mut bytes,
            offset_of!(OpenRecord, open.dirfd),
            &dirfd.to_ne_bytes(),
        );
        put(
            &mut bytes,
            offset_of!(OpenRecord, open.flags),
            &flags.to_ne_bytes(),
        );
        put(
            &mut bytes,
            offset_of!(OpenRecord, open.mode),
            &0o644u32.to_ne_bytes(),
        );
        put(
            &mut bytes,
            offset_of!(OpenRecord, open.path_len),
            &(path.len() as u32).to_ne_bytes(),
        );
        put(&mut bytes, offset_of!(OpenRecord, open.path), path);
        bytes
    }

    #[test]
    fn path_flags_mode_and_result_are_decoded() {
        let flags = (libc::O_CREAT | libc::O_WRONLY) as u32;
        let decoded = decode::decode(&open_record(b"/tmp/x", abi::AT_FDCWD, flags, 3)).unwrap();
        let args = decoded.event.args.unwrap();
        assert_eq!(
            (args.path.as_str(), args.flags, args.mode, args.fd),
            ("/tmp/x", flags, 0o644, 3)
        );
        assert_eq!(decoded.dirfd, Some(abi::AT_FDCWD));
        assert_eq!(decoded.event.return_value, 3);
    }

    #[test]
    fn a_failed_open_has_no_descriptor() {
        let decoded = decode::decode(&open_record(b"/missing", abi::AT_FDCWD, 0, -2)).unwrap();
        assert_eq!(decoded.event.args.unwrap().fd, -1);
        assert_eq!(decoded.event.return_value, -2);
    }

    #[test]
    fn path_length_beyond_the_buffer_is_rejected() {
        let mut bytes = open_record(b"/tmp/x", abi::AT_FDCWD, 0, 3);
        put(
            &mut bytes,
            offset_of!(OpenRecord, open.path_len),
            &(abi::PATH_LEN as u32 + 1).to_ne_bytes(),
        );
        assert_eq!(decode::decode(&bytes).unwrap_err().reason(), "bad_length");
    }
}
