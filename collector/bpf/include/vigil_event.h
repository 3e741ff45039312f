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
#define VIGIL_SOCKADDR_LEN 112 /* sizeof(struct sockaddr_un) rounded up */
#define VIGIL_STR3_LEN 32
#define VIGIL_DEREF_LEN 24
#define VIGIL_LOCAL_SOCKADDR_LEN 28 /* sizeof(struct sockaddr_in6) */
/* A resolved path's names: each starts in the first VIGIL_NAMES_START
 * bytes and may run VIGIL_NAME_SLOT (NAME_MAX + 1), which keeps every copy
 * in bounds for the verifier. */
#define VIGIL_NAME_SLOT 256
#define VIGIL_NAMES_START 512
#define VIGIL_RESOLVED_LEN (VIGIL_NAMES_START + VIGIL_NAME_SLOT)
/* Dentries and mount crossings the kernel walk follows at most. */
#define VIGIL_PATH_DEPTH 32
/* Slots of the syscall_specs map: syscall numbers below 500, then the
 * two process events that are not syscalls. */
#define VIGIL_SYSCALL_SLOTS 512
#define VIGIL_SLOT_EXEC 510 /* sched_process_exec: a successful exec */
#define VIGIL_SLOT_EXIT 511 /* sched_process_exit of the last thread */
/* vigil_header.syscall of records that are not a syscall (process exit). */
#define VIGIL_NO_SYSCALL 0xffff

enum vigil_kind {
	VIGIL_KIND_EXEC = 1,
	/* 2 and 3 were the open and connect records, now syscall records. */
	VIGIL_KIND_SYSCALL = 4,
	VIGIL_KIND_EXIT = 5,
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

/* Bits of vigil_resolved_path.flags. */
enum vigil_resolve_flag {
	/* The walk reached the task's root: names is the whole path. Without
	 * it names is only a tail and user space does not use it as a path. */
	VIGIL_RESOLVE_COMPLETE = 1 << 0,
	/* names is full (the path is longer than it holds). */
	VIGIL_RESOLVE_TRUNCATED = 1 << 1,
	/* More than VIGIL_PATH_DEPTH dentries and mounts. */
	VIGIL_RESOLVE_DEPTH_LIMIT = 1 << 2,
	/* The walk reached a root that is not the task's: a mount outside its
	 * root (a descriptor passed in, a detached mount). */
	VIGIL_RESOLVE_OUTSIDE_ROOT = 1 << 3,
	/* The file is unlinked (d_unlinked): deleted while open. */
	VIGIL_RESOLVE_DELETED = 1 << 4,
	/* A kernel read failed during the walk. */
	VIGIL_RESOLVE_READ_FAILED = 1 << 5,
};

/* x86-64 numbers of the open family, whose return value is a descriptor
 * whose file the kernel walk resolves (abi.rs checks them against libc). */
enum vigil_open_nr {
	VIGIL_NR_OPEN = 2,
	VIGIL_NR_CREAT = 85,
	VIGIL_NR_OPENAT = 257,
	VIGIL_NR_OPENAT2 = 437,
};

/* Indexes of the per-CPU drop counters (map "drops"). */
enum vigil_drop_reason {
	/* bpf_ringbuf_reserve failed: user space is not keeping up. */
	VIGIL_DROP_RINGBUF_FULL = 0,
	/* This CPU has no ring buffer (a CPU brought online after load). */
	VIGIL_DROP_NO_RING = 1,
	VIGIL_DROP_REASONS = 2,
};

/* What a descriptor refers to (the values of vigil.v1.FdKind). */
enum vigil_fd_kind {
	VIGIL_FD_UNKNOWN = 0,
	VIGIL_FD_FILE = 1,
	VIGIL_FD_DIRECTORY = 2,
	VIGIL_FD_SOCKET_INET = 3,
	VIGIL_FD_SOCKET_INET6 = 4,
	VIGIL_FD_SOCKET_UNIX = 5,
	VIGIL_FD_PIPE = 6,
	VIGIL_FD_MEMFD = 7,
	VIGIL_FD_OTHER = 8,
};

/* Bits of vigil_syscall_spec.flags. */
enum vigil_spec_flag {
	/* execve/execveat: success is reported by sched_process_exec, a
	 * failure as an exec record with the path and argv asked for. */
	VIGIL_SPEC_EXEC = 1 << 0,
	/* sockaddr_len_arg points to the length (accept) instead of being it. */
	VIGIL_SPEC_SOCKLEN_PTR = 1 << 1,
	/* Only when args[2] (prot) has PROT_EXEC: mmap, mprotect. */
	VIGIL_SPEC_PROT_EXEC = 1 << 2,
	/* Only when args[3] (mmap flags) has MAP_ANONYMOUS. */
	VIGIL_SPEC_MAP_ANON = 1 << 3,
	/* Only when args[0] lies in a mapping without a file (mprotect). */
	VIGIL_SPEC_ANON_VMA = 1 << 4,
	/* The local end of fd_arg's inet socket goes into local_sockaddr
	 * (listen, accept). */
	VIGIL_SPEC_SOCK_LOCAL = 1 << 5,
};

/* How to report one syscall: the value of map "syscall_specs" at its
 * number, written by user space before load. Argument positions are
 * 1 + the index in args[], 0 for none. */
struct vigil_syscall_spec {
	__u8 enabled;
	__u8 flags;          /* enum vigil_spec_flag bits */
	__u8 str_args[3];    /* user strings into path, path2, str3 */
	__u8 sockaddr_arg;   /* a struct sockaddr into sockaddr */
	__u8 sockaddr_len_arg;
	__u8 fd_arg;         /* a descriptor whose kind goes into fd_kind */
	__u8 deref_arg;      /* a pointer whose first VIGIL_DEREF_LEN bytes go into deref */
	__u8 argv_arg;       /* an argv array (failed exec) */
	__u8 reserved[2];
};

struct vigil_header {
	__u8 kind;      /* enum vigil_kind */
	__u8 flags;     /* enum vigil_flag bits */
	__u16 syscall;  /* syscall number (of this architecture) or VIGIL_NO_SYSCALL */
	__u32 pid;      /* thread group id, what user space calls the pid */
	__u64 ktime_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 tid;
	__u32 ppid;     /* real_parent->tgid */
	__u32 uid;
	__u32 gid;
	__u32 loginuid; /* 4294967295 when unset or without CONFIG_AUDIT */
	/* Inode number of the task's mount namespace (0 when it has none, an
	 * exiting task): for an exec, the filesystem view the new image came
	 * from. */
	__u32 mnt_ns;
	__u64 cgroup_id; /* cgroup v2 id: the inode of its directory */
	__s64 ret;       /* syscall return value; 0 for a successful exec */
	char comm[VIGIL_COMM_LEN];
	/* Low 32 bits of task->self_exec_id: the number of execs in the task's
	 * lineage (fork copies it, exec adds one). A change between two
	 * records of a process without an exec record between them is an exec
	 * user space missed (a dropped record). */
	__u32 exec_id;
	__u32 reserved2;
};

/* The path of a file as the kernel resolved it (the file behind an open's
 * new descriptor, an exec's image): the names of its dentries from the
 * file up to the task's root, crossing mounts, each NUL-terminated, the
 * file's own name first. User space reverses and joins them. */
struct vigil_resolved_path {
	__u64 dev;        /* inode->i_sb->s_dev, kernel encoding (MKDEV) */
	__u64 ino;        /* inode->i_ino */
	__u32 names_len;  /* bytes in names */
	__u16 flags;      /* enum vigil_resolve_flag bits; 0: not resolved */
	__u16 count;      /* names in names */
	char names[VIGIL_RESOLVED_LEN];
};

/* An exec: successful (the new image, argv from the new mm) or failed
 * (the path and argv that were asked for, hdr.ret < 0). */
struct vigil_exec_body {
	__u32 filename_len; /* bytes in filename, without the terminator */
	__u32 argv_len;     /* bytes in argv */
	char filename[VIGIL_PATH_LEN];
	/* The arguments, each NUL-terminated. */
	char argv[VIGIL_ARGV_LEN];
	/* The image (bprm->file) of a successful exec. */
	struct vigil_resolved_path resolved;
};

/* Any other syscall: its raw arguments plus what the spec said to read.
 * User space gives the arguments their meaning by syscall number. */
struct vigil_syscall_body {
	__u64 args[6];
	__u32 path_len;  /* bytes in path, without the terminator */
	__u32 path2_len; /* bytes in path2, without the terminator */
	__u32 sockaddr_len; /* bytes copied into sockaddr */
	__u8 fd_kind;    /* enum vigil_fd_kind of the spec's fd_arg */
	__u8 reserved[3];
	__u8 deref[VIGIL_DEREF_LEN];
	__u8 sockaddr[VIGIL_SOCKADDR_LEN]; /* as the caller passed it */
	char str3[VIGIL_STR3_LEN];
	char path[VIGIL_PATH_LEN];
	char path2[VIGIL_PATH_LEN];
	__u32 local_sockaddr_len; /* bytes in local_sockaddr */
	__u8 local_sockaddr[VIGIL_LOCAL_SOCKADDR_LEN]; /* VIGIL_SPEC_SOCK_LOCAL */
	/* The file a successful open family call returned. */
	struct vigil_resolved_path resolved;
};

struct vigil_exit_body {
	__s32 exit_code; /* task->exit_code: the status as wait(2) reports it */
	__u32 reserved;
};

struct vigil_exec_record {
	struct vigil_header hdr;
	struct vigil_exec_body exec;
};

struct vigil_syscall_record {
	struct vigil_header hdr;
	struct vigil_syscall_body sys;
};

struct vigil_exit_record {
	struct vigil_header hdr;
	struct vigil_exit_body exit;
};

_Static_assert(sizeof(struct vigil_header) == 80, "vigil_header layout changed");
_Static_assert(sizeof(struct vigil_syscall_spec) == 12, "vigil_syscall_spec layout changed");
_Static_assert(sizeof(struct vigil_resolved_path) == 792, "vigil_resolved_path layout changed");
_Static_assert(sizeof(struct vigil_exec_record) == 1648, "vigil_exec_record layout changed");
_Static_assert(sizeof(struct vigil_syscall_record) == 1648, "vigil_syscall_record layout changed");
_Static_assert(sizeof(struct vigil_exit_record) == 88, "vigil_exit_record layout changed");

#endif /* VIGIL_EVENT_H */
