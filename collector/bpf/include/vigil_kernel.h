/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The few kernel types vigil.bpf.c reads, instead of a 2.8 MB vmlinux.h.
 *
 * Each struct carries preserve_access_index, so clang records every field
 * access as a CO-RE relocation and libbpf moves it to the running kernel's
 * offsets (from /sys/kernel/btf/vmlinux) at load time. The structs only list
 * the fields we use; their order and offsets here do not matter. Names must
 * match the kernel's, since that is how libbpf finds them.
 */
#ifndef VIGIL_KERNEL_H
#define VIGIL_KERNEL_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

/* UAPI values (stable by definition) used by the map definitions. */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

#define BPF_ANY 0

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define AT_FDCWD -100

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct {
	unsigned int val;
} kuid_t;

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
};

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct mm_struct *mm;
	kuid_t loginuid; /* only with CONFIG_AUDIT: checked with bpf_core_field_exists */
};

/* Tracepoint contexts (the layouts in tracefs events/<category>/<name>/format). */
struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

/* Every syscalls/sys_enter_* tracepoint. */
struct trace_event_raw_sys_enter {
	struct trace_entry ent;
	long id;
	unsigned long args[6];
};

/* Every syscalls/sys_exit_* tracepoint. */
struct trace_event_raw_sys_exit {
	struct trace_entry ent;
	long id;
	long ret;
};

struct trace_event_raw_sched_process_exec {
	struct trace_entry ent;
	/* __data_loc: offset of the string from the context in the low 16
	 * bits, its length in the high 16 bits. */
	__u32 __data_loc_filename;
	int pid;
	int old_pid;
};

#pragma clang attribute pop

/* User-space argument layouts (UAPI, fixed). */
struct vigil_sockaddr_in {
	__u16 family;
	__be16 port;
	__u8 addr[4];
};

struct vigil_sockaddr_in6 {
	__u16 family;
	__be16 port;
	__u32 flowinfo;
	__u8 addr[16];
};

struct vigil_open_how {
	__u64 flags;
	__u64 mode;
	__u64 resolve;
};

#endif /* VIGIL_KERNEL_H */
