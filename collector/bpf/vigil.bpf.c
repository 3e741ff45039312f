// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
/*
 * Vigil's kernel side: exec, open and connect, written as fixed-size records
 * (include/vigil_event.h) into one ring buffer.
 *
 * Rules every program here follows:
 * - never block and never wait for user space: when the ring buffer is full
 *   the record is dropped and counted by reason in the per-CPU "drops" map;
 * - syscalls are reported at exit with their return value: the enter
 *   program stashes its arguments per thread, the exit program emits;
 * - events from the collector itself are ignored, or reading /proc for one
 *   event would cause the next.
 */
#include "vigil_kernel.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "vigil_event.h"

/* bpf_probe_read_* and bpf_get_current_task are GPL-only helpers, so the
 * object declares the GPL side of its dual license for the kernel to load it. */
char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load: the collector's own tgid. */
const volatile __u32 self_tgid = 0;

/* Never read: it puts the record types into the object's BTF, which the
 * Rust mirror is checked against (src/kernel/abi.rs). Locals and pointers
 * alone would not; zero-length arrays take no space in .rodata. */
const volatile struct {
	struct vigil_exec_record exec[0];
	struct vigil_open_record open[0];
	struct vigil_connect_record connect[0];
	enum vigil_kind kinds[0];
	enum vigil_flag flags[0];
	enum vigil_drop_reason drop_reasons[0];
	/* The kernel's BTF check rejects a variable of size zero. */
	__u32 nonzero;
} vigil_abi_anchor = {};

/* Sized by the loader (config ring_buffer_bytes) before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIGIL_DROP_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Arguments seen at syscall enter, kept until the exit of the same thread.
 * LRU, so entries whose exit never came cannot fill the map. */
struct open_pending {
	__u64 filename;  /* user pointer, to retry a failed read at exit */
	__u32 hdr_flags; /* vigil_flag bits gathered at enter */
	__u32 reserved;
	struct vigil_open_body body;
};

struct connect_pending {
	__u32 hdr_flags;
	__u32 reserved;
	struct vigil_connect_body body;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct open_pending);
} pending_open SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct connect_pending);
} pending_connect SEC(".maps");

/* Per-CPU staging for pending values: too large for the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_pending);
} open_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct connect_pending);
} connect_scratch SEC(".maps");

static __always_inline int is_self(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == self_tgid;
}

static __always_inline void count_drop(__u32 reason)
{
	__u64 *count = bpf_map_lookup_elem(&drops, &reason);

	if (count)
		*count += 1;
}

static __always_inline void *reserve(__u64 size)
{
	void *record = bpf_ringbuf_reserve(&events, size, 0);

	if (!record)
		count_drop(VIGIL_DROP_RINGBUF_FULL);
	return record;
}

static __always_inline __u32 login_uid(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->loginuid))
		return (__u32)-1;
	return BPF_CORE_READ(task, loginuid.val);
}

static __always_inline void fill_header(struct vigil_header *hdr, __u8 kind, __s64 ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	hdr->kind = kind;
	hdr->flags = 0;
	hdr->reserved = 0;
	hdr->pid = pid_tgid >> 32;
	hdr->ktime_ns = bpf_ktime_get_ns();
	hdr->tid = (__u32)pid_tgid;
	hdr->ppid = BPF_CORE_READ(task, real_parent, tgid);
	hdr->uid = (__u32)uid_gid;
	hdr->gid = uid_gid >> 32;
	hdr->loginuid = login_uid(task);
	hdr->reserved2 = 0;
	hdr->cgroup_id = bpf_get_current_cgroup_id();
	hdr->ret = ret;
	bpf_get_current_comm(hdr->comm, sizeof(hdr->comm));
}

/* Length of a string read by bpf_probe_read_*_str (which counts the
 * terminator), setting flags for failure and a full buffer. */
static __always_inline __u32 str_len(long copied, __u32 capacity, __u32 *flags)
{
	if (copied <= 0) {
		*flags |= VIGIL_FLAG_READ_FAILED;
		return 0;
	}
	if ((__u32)copied >= capacity)
		*flags |= VIGIL_FLAG_PATH_TRUNCATED;
	return (__u32)copied - 1;
}

/* === exec === */

static __always_inline void read_argv(struct vigil_exec_record *rec, struct task_struct *task)
{
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	unsigned long start = BPF_CORE_READ(mm, arg_start);
	unsigned long end = BPF_CORE_READ(mm, arg_end);
	__u64 len;

	rec->exec.argv_len = 0;
	if (end <= start)
		return;
	len = end - start;
	if (len > VIGIL_ARGV_LEN) {
		rec->hdr.flags |= VIGIL_FLAG_ARGV_TRUNCATED;
		len = VIGIL_ARGV_LEN;
	}
	/* Without the barrier clang may pass the unclamped copy of len, which
	 * the verifier rejects as unbounded. */
	barrier_var(len);
	if (bpf_probe_read_user(rec->exec.argv, len, (const void *)start) < 0) {
		rec->hdr.flags |= VIGIL_FLAG_READ_FAILED;
		return;
	}
	rec->exec.argv_len = len;
}

SEC("tracepoint/sched/sched_process_exec")
int vigil_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct vigil_exec_record *rec;
	__u32 flags = 0;
	long copied;

	if (is_self())
		return 0;
	rec = reserve(sizeof(*rec));
	if (!rec)
		return 0;
	fill_header(&rec->hdr, VIGIL_KIND_EXEC, 0);
	copied = bpf_probe_read_kernel_str(rec->exec.filename, sizeof(rec->exec.filename),
					   (void *)ctx + (ctx->__data_loc_filename & 0xFFFF));
	rec->exec.filename_len = str_len(copied, VIGIL_PATH_LEN, &flags);
	rec->hdr.flags |= flags;
	read_argv(rec, (struct task_struct *)bpf_get_current_task());
	bpf_ringbuf_submit(rec, 0);
	return 0;
}

/* === open === */

static __always_inline int stash_open(__s32 dirfd, const char *filename, __u32 flags, __u32 mode)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 zero = 0;
	struct open_pending *pending;
	long copied;

	if ((id >> 32) == self_tgid)
		return 0;
	pending = bpf_map_lookup_elem(&open_scratch, &zero);
	if (!pending)
		return 0;
	pending->filename = (__u64)filename;
	pending->hdr_flags = 0;
	pending->reserved = 0;
	pending->body.dirfd = dirfd;
	pending->body.flags = flags;
	pending->body.mode = mode;
	copied = bpf_probe_read_user_str(pending->body.path, sizeof(pending->body.path), filename);
	pending->body.path_len = str_len(copied, VIGIL_PATH_LEN, &pending->hdr_flags);
	if (bpf_map_update_elem(&pending_open, &id, pending, BPF_ANY))
		count_drop(VIGIL_DROP_PENDING_FULL);
	return 0;
}

static __always_inline int emit_open(__s64 ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct open_pending *pending = bpf_map_lookup_elem(&pending_open, &id);
	struct vigil_open_record *rec;
	__u32 flags;
	long copied;

	if (!pending)
		return 0;
	rec = reserve(sizeof(*rec));
	if (!rec)
		goto out;
	fill_header(&rec->hdr, VIGIL_KIND_OPEN, ret);
	bpf_probe_read_kernel(&rec->open, sizeof(rec->open), &pending->body);
	flags = pending->hdr_flags;
	if (flags & VIGIL_FLAG_READ_FAILED) {
		/* The page was not present at enter; the kernel has faulted it in
		 * since, copying the path itself. */
		flags = 0;
		copied = bpf_probe_read_user_str(rec->open.path, sizeof(rec->open.path),
						 (const char *)pending->filename);
		rec->open.path_len = str_len(copied, VIGIL_PATH_LEN, &flags);
	}
	rec->hdr.flags = flags;
	bpf_ringbuf_submit(rec, 0);
out:
	bpf_map_delete_elem(&pending_open, &id);
	return 0;
}

/* openat(int dfd, const char *filename, int flags, umode_t mode) */
SEC("tracepoint/syscalls/sys_enter_openat")
int vigil_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	return stash_open((__s32)ctx->args[0], (const char *)ctx->args[1], (__u32)ctx->args[2],
			  (__u32)ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int vigil_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return emit_open(ctx->ret);
}

/* openat2(int dfd, const char *filename, struct open_how *how, size_t usize) */
SEC("tracepoint/syscalls/sys_enter_openat2")
int vigil_enter_openat2(struct trace_event_raw_sys_enter *ctx)
{
	struct vigil_open_how how = {};

	bpf_probe_read_user(&how, sizeof(how), (const void *)ctx->args[2]);
	return stash_open((__s32)ctx->args[0], (const char *)ctx->args[1], (__u32)how.flags,
			  (__u32)how.mode);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int vigil_exit_openat2(struct trace_event_raw_sys_exit *ctx)
{
	return emit_open(ctx->ret);
}

/* === connect === */

static __always_inline void read_sockaddr(struct connect_pending *pending, const void *uaddr)
{
	struct vigil_connect_body *body = &pending->body;
	struct vigil_sockaddr_in6 in6 = {};
	struct vigil_sockaddr_in in = {};
	__u64 len;

	if (bpf_probe_read_user(&body->family, sizeof(body->family), uaddr) < 0) {
		pending->hdr_flags |= VIGIL_FLAG_READ_FAILED;
		return;
	}
	switch (body->family) {
	case AF_INET:
		if (bpf_probe_read_user(&in, sizeof(in), uaddr) < 0)
			break;
		body->port = bpf_ntohs(in.port);
		__builtin_memcpy(body->addr, in.addr, sizeof(in.addr));
		return;
	case AF_INET6:
		if (bpf_probe_read_user(&in6, sizeof(in6), uaddr) < 0)
			break;
		body->port = bpf_ntohs(in6.port);
		__builtin_memcpy(body->addr, in6.addr, sizeof(in6.addr));
		return;
	case AF_UNIX:
		if (body->addrlen <= sizeof(__u16))
			return;
		len = body->addrlen - sizeof(__u16);
		if (len > VIGIL_UNIX_PATH_LEN)
			len = VIGIL_UNIX_PATH_LEN;
		barrier_var(len); /* see read_argv */
		if (bpf_probe_read_user(body->unix_path, len, uaddr + sizeof(__u16)) < 0)
			break;
		return;
	default:
		return;
	}
	pending->hdr_flags |= VIGIL_FLAG_READ_FAILED;
}

/* connect(int fd, struct sockaddr *uservaddr, int addrlen) */
SEC("tracepoint/syscalls/sys_enter_connect")
int vigil_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 zero = 0;
	struct connect_pending *pending;

	if ((id >> 32) == self_tgid)
		return 0;
	pending = bpf_map_lookup_elem(&connect_scratch, &zero);
	if (!pending)
		return 0;
	/* The scratch slot holds the previous call's bytes: clear them. */
	__builtin_memset(pending, 0, sizeof(*pending));
	pending->body.fd = (__s32)ctx->args[0];
	pending->body.addrlen = (__u32)ctx->args[2];
	read_sockaddr(pending, (const void *)ctx->args[1]);
	if (bpf_map_update_elem(&pending_connect, &id, pending, BPF_ANY))
		count_drop(VIGIL_DROP_PENDING_FULL);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int vigil_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct connect_pending *pending = bpf_map_lookup_elem(&pending_connect, &id);
	struct vigil_connect_record *rec;

	if (!pending)
		return 0;
	rec = reserve(sizeof(*rec));
	if (rec) {
		fill_header(&rec->hdr, VIGIL_KIND_CONNECT, ctx->ret);
		rec->hdr.flags = pending->hdr_flags;
		bpf_probe_read_kernel(&rec->connect, sizeof(rec->connect), &pending->body);
		bpf_ringbuf_submit(rec, 0);
	}
	bpf_map_delete_elem(&pending_connect, &id);
	return 0;
}
