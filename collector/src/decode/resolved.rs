//! `vigil_resolved_path`: the path of a file as the kernel resolved it (the
//! file behind an open's new descriptor, an exec's image), put beside the
//! raw argument: `args.path` becomes the resolved path (Falco's `fd.name`),
//! `args.path_raw` keeps what the process passed (`fd.nameraw`).

use std::mem::offset_of;

use vigil_proto::v1::{Args, PathMarker, PathSource};

use super::{DecodeError, Record};
use crate::kernel::abi::{self, ResolvedPath};

/// What the kernel walk found, read from a record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Resolved {
    /// The whole absolute path, when the walk reached the task's root and
    /// every name fit; `None` otherwise (never a guess).
    pub path: Option<String>,
    pub markers: Vec<PathMarker>,
    /// `st_dev` as stat(2) reports it.
    pub dev: u64,
    pub inode: u64,
}

/// Reads the `vigil_resolved_path` at `base`; `None` when the kernel did
/// not resolve this record (flags 0).
pub(super) fn read(record: &Record<'_>, base: usize) -> Result<Option<Resolved>, DecodeError> {
    let flags = record.u16(base + offset_of!(ResolvedPath, flags))?;
    if flags == 0 {
        return Ok(None);
    }
    let names_len = record.u32(base + offset_of!(ResolvedPath, names_len))?;
    let count = record.u16(base + offset_of!(ResolvedPath, count))?;
    let names = record.bytes(
        base + offset_of!(ResolvedPath, names),
        abi::RESOLVED_LEN,
        names_len,
        "resolved.names_len",
    )?;
    let kernel_dev = record.u64(base + offset_of!(ResolvedPath, dev))?;
    let mut markers = markers_of(flags);
    let usable = flags & abi::RESOLVE_COMPLETE != 0
        && flags & (abi::RESOLVE_TRUNCATED | abi::RESOLVE_READ_FAILED) == 0;
    let path = usable
        .then(|| join_leaf_first(names, count))
        .flatten()
        .map(|(path, utf8)| {
            if !utf8 {
                markers.push(PathMarker::NotUtf8);
            }
            path
        });
    Ok(Some(Resolved {
        path,
        markers,
        dev: user_dev(kernel_dev),
        inode: record.u64(base + offset_of!(ResolvedPath, ino))?,
    }))
}

/// The markers a walk's flags carry (`COMPLETE` is none: it is the norm).
fn markers_of(flags: u16) -> Vec<PathMarker> {
    [
        (abi::RESOLVE_TRUNCATED, PathMarker::Truncated),
        (abi::RESOLVE_DEPTH_LIMIT, PathMarker::DepthLimit),
        (abi::RESOLVE_OUTSIDE_ROOT, PathMarker::OutsideRoot),
        (abi::RESOLVE_DELETED, PathMarker::Deleted),
    ]
    .into_iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, marker)| marker)
    .collect()
}

/// The kernel writes the file's name first and the top directory last,
/// each NUL-terminated: reversed and joined under "/". `None` when the
/// buffer holds fewer names than `count` says (a malformed record); the
/// flag is false when a name was not UTF-8.
fn join_leaf_first(names: &[u8], count: u16) -> Option<(String, bool)> {
    let names = names.strip_suffix(&[0]).unwrap_or(names);
    let parts: Vec<&[u8]> = if names.is_empty() {
        Vec::new()
    } else {
        names.split(|b| *b == 0).collect()
    };
    if parts.len() != usize::from(count) || parts.iter().any(|p| p.is_empty() || p.contains(&b'/'))
    {
        return None;
    }
    let mut utf8 = true;
    let mut path = String::new();
    for part in parts.iter().rev() {
        path.push('/');
        utf8 &= std::str::from_utf8(part).is_ok();
        path.push_str(&String::from_utf8_lossy(part));
    }
    if path.is_empty() {
        path.push('/');
    }
    Some((path, utf8))
}

/// The kernel's `dev_t` (major << 20 | minor) as stat(2) encodes it.
fn user_dev(kernel_dev: u64) -> u64 {
    let major = (kernel_dev >> 20) as u32;
    let minor = (kernel_dev & 0xf_ffff) as u32;
    libc::makedev(major, minor)
}

/// Keeps the raw argument in `path_raw` and, when the kernel resolved the
/// file, makes `path` its resolved path. `raw_utf8` is false when the
/// argument's bytes were not UTF-8; `raw_truncated` when it filled its buffer.
pub(super) fn apply(
    args: &mut Args,
    resolved: Option<Resolved>,
    raw_utf8: bool,
    raw_truncated: bool,
) {
    args.path_raw.clone_from(&args.path);
    if let Some(resolved) = resolved {
        args.file_dev = resolved.dev;
        args.file_inode = resolved.inode;
        for marker in resolved.markers {
            add_marker(args, marker);
        }
        if let Some(path) = resolved.path {
            args.path = path;
            args.set_path_source(PathSource::Kernel);
            return;
        }
    }
    // The argument stands in for the path: its own defects are the path's.
    if !raw_utf8 {
        add_marker(args, PathMarker::NotUtf8);
    }
    if raw_truncated {
        add_marker(args, PathMarker::Truncated);
    }
}

fn add_marker(args: &mut Args, marker: PathMarker) {
    if !args.path_markers().any(|m| m == marker) {
        args.path_markers.push(marker.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_reversed_under_the_root() {
        assert_eq!(
            join_leaf_first(b"shadow\0etc\0", 2),
            Some(("/etc/shadow".to_owned(), true))
        );
        assert_eq!(join_leaf_first(b"", 0), Some(("/".to_owned(), true)));
        assert_eq!(
            join_leaf_first(b"x\xff\0tmp\0", 2),
            Some(("/tmp/x\u{fffd}".to_owned(), false))
        );
    }

    #[test]
    fn a_count_the_names_do_not_match_is_refused() {
        assert_eq!(join_leaf_first(b"shadow\0etc\0", 3), None);
        assert_eq!(join_leaf_first(b"shadow\0\0etc\0", 2), None);
        assert_eq!(join_leaf_first(b"a/b\0", 1), None);
    }

    #[test]
    fn devices_take_the_stat_encoding() {
        // 8:1 (sda1) and 0:45 (an overlay).
        assert_eq!(user_dev((8 << 20) | 1), 0x801);
        assert_eq!(user_dev(45), 45);
    }

    #[test]
    fn a_walk_cut_short_keeps_the_argument_with_its_marker() {
        let mut args = Args {
            path: "/etc/../etc/shadow".to_owned(),
            ..Args::default()
        };
        let resolved = Resolved {
            path: None,
            markers: vec![PathMarker::DepthLimit],
            dev: 2049,
            inode: 7,
        };
        apply(&mut args, Some(resolved), true, false);
        assert_eq!(args.path, "/etc/../etc/shadow");
        assert_eq!(args.path_raw, "/etc/../etc/shadow");
        assert_eq!(args.path_source(), PathSource::Unspecified);
        assert_eq!(
            args.path_markers().collect::<Vec<_>>(),
            [PathMarker::DepthLimit]
        );
        assert_eq!((args.file_dev, args.file_inode), (2049, 7));
    }
}
