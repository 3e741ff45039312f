//! `vigil_exit_record`: the last thread of a process exited.

use std::mem::offset_of;

use vigil_proto::v1::Args;

use super::{DecodeError, Decoded, Record};
use crate::kernel::{abi::ExitRecord, syscalls::PROCESS_EXIT};

pub(super) fn decode(record: &Record<'_>, decoded: &mut Decoded) -> Result<(), DecodeError> {
    decoded.event.syscall = PROCESS_EXIT.to_owned();
    decoded.event.args = Some(Args {
        exit_code: record.i32(offset_of!(ExitRecord, exit.exit_code))?,
        ..Args::default()
    });
    Ok(())
}
