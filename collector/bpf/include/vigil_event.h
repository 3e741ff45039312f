/* SPDX-License-Identifier: Apache-2.0 */
/*
 * THE kernel record ABI: what vigil.bpf.c writes into the ring buffer and
 * what collector/src/kernel/abi.rs reads. The Rust mirror is checked against
 * the BTF of the compiled object (abi.rs tests), so a change here that is
 * not made there fails the build's tests instead of corrupting events.
 *
 * Every record is fixed-size for its kind and starts with struct
 * vigil_header, whose first byte is the kind. All fields are explicitly
 * sized and laid out without implicit padding. Integers are in host byte
 * order (ports included). String buffers are NUL-terminated unless their
 * *_len says they were filled; bytes after the terminator are undefined.
 *
 * Uses the kernel's __u8..__u64 types: include vigil_kernel.h first.
 */
#ifndef VIGIL_EVENT_H
#define VIGIL_EVENT_H

#define VIGIL_COMM_LEN 16
#define VIGIL_PATH_LEN 256
#define VIGIL_ARGV_LEN 512
#define VIGIL_ADDR_LEN 16
#define VIGIL_UNIX_PATH_LEN 108

enum vigil_kind {
	VIGIL_KIND_EXEC = 1,
	VIGIL_KIND_OPEN = 2,
	VIGIL_KIND_CONNECT = 3,
};

/* Bits of vigil_header.flags. */
enum vigil_flag {
	/* A path or filename filled its buffer and may be cut short. */
	VIGIL_FLAG_PATH_TRUNCATED = 1 << 0,
	/* The argument vector was longer than VIGIL_ARGV_LEN. */
	VIGIL_FLAG_ARGV_TRUNCATED = 1 << 1,
	/* A user-memory read failed (page not present, bad pointer); the
	 * affected buffer is empty. */
	VIGIL_FLAG_READ_FAILED = 1 << 2,
};

/* Indexes of the per-CPU drop counters (map "drops"). */
enum vigil_drop_reason {
	/* bpf_ringbuf_reserve failed: user space is not keeping up. */
	VIGIL_DROP_RINGBUF_FULL = 0,
	/* The syscall-enter arguments could not be stashed for the exit. */
	VIGIL_DROP_PENDING_FULL = 1,
	VIGIL_DROP_REASONS = 2,
};

struct vigil_header {
	__u8 kind;      /* enum vigil_kind */
	__u8 flags;     /* enum vigil_flag bits */
	__u16 reserved;
	__u32 pid;      /* thread group id, what user space calls the pid */
	__u64 ktime_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 tid;
	__u32 ppid;     /* real_parent->tgid */
	__u32 uid;
	__u32 gid;
	__u32 loginuid; /* 4294967295 when unset or without CONFIG_AUDIT */
	__u32 reserved2;
	__u64 cgroup_id; /* cgroup v2 id: the inode of its directory */
	__s64 ret;       /* syscall return value; 0 for exec */
	char comm[VIGIL_COMM_LEN];
};

struct vigil_exec_body {
	__u32 filename_len; /* bytes in filename, without the terminator */
	__u32 argv_len;     /* bytes in argv */
	char filename[VIGIL_PATH_LEN];
	/* mm->arg_start..arg_end: the arguments, each NUL-terminated. */
	char argv[VIGIL_ARGV_LEN];
};

struct vigil_open_body {
	__s32 dirfd;    /* AT_FDCWD (-100) for paths relative to the cwd */
	__u32 flags;    /* O_* flags */
	__u32 mode;
	__u32 path_len; /* bytes in path, without the terminator */
	char path[VIGIL_PATH_LEN];
};

struct vigil_connect_body {
	__s32 fd;
	__u16 family;  /* AF_INET, AF_INET6, AF_UNIX, or whatever was passed */
	__u16 port;    /* host byte order */
	__u32 addrlen; /* as passed by the caller */
	__u8 addr[VIGIL_ADDR_LEN]; /* 4 bytes for AF_INET, 16 for AF_INET6 */
	/* sun_path, addrlen - 2 bytes of it; abstract names start with NUL. */
	char unix_path[VIGIL_UNIX_PATH_LEN];
};

struct vigil_exec_record {
	struct vigil_header hdr;
	struct vigil_exec_body exec;
};

struct vigil_open_record {
	struct vigil_header hdr;
	struct vigil_open_body open;
};

struct vigil_connect_record {
	struct vigil_header hdr;
	struct vigil_connect_body connect;
};

_Static_assert(sizeof(struct vigil_header) == 72, "vigil_header layout changed");
_Static_assert(sizeof(struct vigil_exec_record) == 848, "vigil_exec_record layout changed");
_Static_assert(sizeof(struct vigil_open_record) == 344, "vigil_open_record layout changed");
_Static_assert(sizeof(struct vigil_connect_record) == 208, "vigil_connect_record layout changed");

#endif /* VIGIL_EVENT_H */
