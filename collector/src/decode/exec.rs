//! `vigil_exec_record`: an exec, with the image path and argv; a failed one
//! (negative return value) with the path and argv that were asked for.

use std::mem::offset_of;

use vigil_proto::v1::Args;

use super::{DecodeError, Decoded, Record, resolved, until_nul};
use crate::kernel::{
    abi::{self, ExecRecord},
    syscalls,
};

pub(super) fn decode(record: &Record<'_>, decoded: &mut Decoded) -> Result<(), DecodeError> {
    let filename_len = record.u32(offset_of!(ExecRecord, exec.filename_len))?;
    let argv_len = record.u32(offset_of!(ExecRecord, exec.argv_len))?;
    let filename = record.bytes(
        offset_of!(ExecRecord, exec.filename),
        abi::PATH_LEN,
        filename_len,
        "filename_len",
    )?;
    let argv = record.bytes(
        offset_of!(ExecRecord, exec.argv),
        abi::ARGV_LEN,
        argv_len,
        "argv_len",
    )?;
    let nr = record.u16(offset_of!(ExecRecord, hdr.syscall))?;
    // A successful exec whose syscall enter was not seen is an execve.
    decoded.event.syscall = syscalls::by_nr(nr).map_or("execve", |s| s.name).to_owned();
    let mut args = Args {
        path: until_nul(filename),
        argv: split_argv(argv),
        ..Args::default()
    };
    if !args.path.is_empty() {
        let resolved = resolved::read(record, offset_of!(ExecRecord, exec.resolved))?;
        resolved::apply(
            &mut args,
            resolved,
            std::str::from_utf8(filename).is_ok(),
            decoded.flags & abi::FLAG_PATH_TRUNCATED != 0,
        );
    }
    decoded.event.args = Some(args);
    Ok(())
}

/// The kernel keeps argv as NUL-terminated strings back to back; a
/// truncated copy ends inside the last one, which is kept as far as it goes.
fn split_argv(bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    bytes
        .split(|b| *b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;
    use crate::decode::{
        self,
        tests::{put, record},
    };

    fn exec_record(filename: &[u8], argv: &[u8]) -> Vec<u8> {
        let mut bytes = record(abi::KIND_EXEC, size_of::<ExecRecord>());
        put(
            &mut bytes,
            offset_of!(ExecRecord, exec.filename_len),
            &(filename.len() as u32).to_ne_bytes(),
        );
        put(&mut bytes, offset_of!(ExecRecord, exec.filename), filename);
        put(
            &mut bytes,
            offset_of!(ExecRecord, exec.argv_len),
            &(argv.len() as u32).to_ne_bytes(),
        );
        put(&mut bytes, offset_of!(ExecRecord, exec.argv), argv);
        bytes
    }

    #[test]
    fn filename_and_argv_are_decoded() {
        let bytes = exec_record(b"/bin/true", b"true\0--flag\0\0last\0");
        let args = decode::decode(&bytes).unwrap().event.args.unwrap();
        assert_eq!(args.path, "/bin/true");
        assert_eq!(args.argv, ["true", "--flag", "", "last"]);
    }

    #[test]
    fn truncated_argv_keeps_the_partial_last_argument() {
        assert_eq!(split_argv(b"cat\0/very/long/pa"), ["cat", "/very/long/pa"]);
        assert!(split_argv(b"").is_empty());
    }

    #[test]
    fn lengths_beyond_their_buffers_are_rejected() {
        let mut bytes = exec_record(b"/bin/true", b"true\0");
        put(
            &mut bytes,
            offset_of!(ExecRecord, exec.argv_len),
            &(abi::ARGV_LEN as u32 + 1).to_ne_bytes(),
        );
        let error = decode::decode(&bytes).unwrap_err();
        assert_eq!(error.reason(), "bad_length", "{error}");
        let mut bytes = exec_record(b"/bin/true", b"true\0");
        put(
            &mut bytes,
            offset_of!(ExecRecord, exec.filename_len),
            &u32::MAX.to_ne_bytes(),
        );
        assert_eq!(decode::decode(&bytes).unwrap_err().reason(), "bad_length");
    }
}
