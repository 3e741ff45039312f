// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
/*
 * Vigil's kernel side: every security-relevant syscall at its exit, with its
 * return value, plus process exec and exit, written as fixed-size records
 * (include/vigil_event.h) into the ring buffer of the CPU they ran on.
 *
 * One BTF tracepoint sees every syscall at its exit (docs/decisions/0004):
 * sys_exit looks the syscall number up in "syscall_specs" and, only when
 * user space enabled it, emits a record with the six arguments (still in
 * the saved user registers: the kernel does not change them before exit)
 * and what the spec names (strings, a socket address, a descriptor's kind).
 * A syscall that is not enabled costs one array lookup and sends nothing.
 *
 * Rules every program here follows:
 * - never block and never wait for user space: when the ring buffer is full
 *   the record is dropped and counted by reason in the per-CPU "drops" map;
 * - user memory is read at exit, when the kernel has faulted it in;
 * - events from the collector itself are ignored, or reading /proc for one
 *   event would cause the next.
 */
#include "vigil_kernel.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "vigil_event.h"

/* bpf_probe_read_* and bpf_get_current_task are GPL-only helpers, so the
 * object declares the GPL side of its dual license for the kernel to load it. */
char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load: the collector's own tgid. */
const volatile __u32 self_tgid = 0;
/* Set by the loader: wake the reader only once this many bytes wait. */
const volatile __u32 wakeup_bytes = 0;

/* Never read: it puts the record types into the object's BTF, which the
 * Rust mirror is checked against (src/kernel/abi.rs). Locals and pointers
 * alone would not; zero-length arrays take no space in .rodata. */
const volatile struct {
	struct vigil_exec_record exec[0];
	struct vigil_syscall_record syscall[0];
	struct vigil_exit_record exit[0];
	struct vigil_syscall_spec spec[0];
	enum vigil_kind kinds[0];
	enum vigil_flag flags[0];
	enum vigil_drop_reason drop_reasons[0];
	enum vigil_fd_kind fd_kinds[0];
	enum vigil_spec_flag spec_flags[0];
	enum vigil_resolve_flag resolve_flags[0];
	enum vigil_open_nr open_nrs[0];
	/* The kernel's BTF check rejects a variable of size zero. */
	__u32 nonzero;
} vigil_abi_anchor = {};

/* One ring buffer per CPU, so CPUs never contend for one ring's lock and
 * a flood on one CPU cannot crowd out the records of the others. The
 * loader creates the rings (sized from config ring_buffer_bytes), sets the
 * number of CPUs and fills the slots after load. */
struct ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct ring);
} rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIGIL_DROP_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* What to report for each syscall number; filled by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_SYSCALL_SLOTS);
	__type(key, __u32);
	__type(value, struct vigil_syscall_spec);
} syscall_specs SEC(".maps");

/* A syscall at its exit: its number and its six raw arguments. */
struct call {
	__u32 nr;
	__u64 args[6];
};

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

/* Programs run with migration disabled: reserve and submit see one CPU. */
static __always_inline void *this_cpu_ring(void)
{
	__u32 cpu = bpf_get_smp_processor_id();

	return bpf_map_lookup_elem(&rings, &cpu);
}

static __always_inline void *reserve(__u64 size)
{
	void *ring = this_cpu_ring();
	void *record;

	if (!ring) {
		count_drop(VIGIL_DROP_NO_RING);
		return 0;
	}
	record = bpf_ringbuf_reserve(ring, size, 0);
	if (!record)
		count_drop(VIGIL_DROP_RINGBUF_FULL);
	return record;
}

/* Waking the reader for every record costs the traced thread an
 * interrupt and, on a busy CPU, a context switch; it is woken only when
 * records pile up, and otherwise reads on its own short poll interval. */
static __always_inline void submit(void *record)
{
	void *ring = this_cpu_ring();
	__u64 waiting = ring ? bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) : 0;

	bpf_ringbuf_submit(record, waiting >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline struct vigil_syscall_spec *spec_of(long slot)
{
	__u32 key = (__u32)slot;
	struct vigil_syscall_spec *spec;

	if (slot < 0 || slot >= VIGIL_SYSCALL_SLOTS)
		return 0;
	spec = bpf_map_lookup_elem(&syscall_specs, &key);
	if (!spec || !spec->enabled)
		return 0;
	return spec;
}

static __always_inline __u32 login_uid(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->loginuid))
		return (__u32)-1;
	return task->loginuid.val;
}

static __always_inline void fill_header(struct vigil_header *hdr, __u8 kind, __u16 syscall,
					__s64 ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	/* A BTF pointer: its fields are plain loads, not probe-read calls. */
	struct task_struct *task = bpf_get_current_task_btf();

	hdr->kind = kind;
	hdr->flags = 0;
	hdr->syscall = syscall;
	hdr->pid = pid_tgid >> 32;
	hdr->ktime_ns = bpf_ktime_get_ns();
	hdr->tid = (__u32)pid_tgid;
	hdr->ppid = task->real_parent->tgid;
	hdr->uid = (__u32)uid_gid;
	hdr->gid = uid_gid >> 32;
	hdr->loginuid = login_uid(task);
	/* BTF loads: a NULL nsproxy (an exiting task) reads as 0. */
	hdr->mnt_ns = task->nsproxy->mnt_ns->ns.inum;
	hdr->cgroup_id = bpf_get_current_cgroup_id();
	hdr->ret = ret;
	bpf_get_current_comm(hdr->comm, sizeof(hdr->comm));
	hdr->exec_id = (__u32)task->self_exec_id;
	hdr->reserved2 = 0;
}

/* Length of a string read by bpf_probe_read_*_str (which counts the
 * terminator), setting flags for failure and a full buffer. */
static __always_inline __u32 str_len(long copied, __u32 capacity, __u8 *flags)
{
	if (copied <= 0) {
		*flags |= VIGIL_FLAG_READ_FAILED;
		return 0;
	}
	if ((__u32)copied >= capacity)
		*flags |= VIGIL_FLAG_PATH_TRUNCATED;
	return (__u32)copied - 1;
}

/* args[position - 1], or 0 for position 0 (none). */
static __always_inline __u64 arg_at(const struct call *call, __u8 position)
{
	if (position == 0 || position > 6)
		return 0;
	return call->args[(position - 1) & 7];
}

/* === filters === */

static long anon_vma(struct task_struct *task, struct vm_area_struct *vma, void *found)
{
	*(int *)found = BPF_CORE_READ(vma, vm_file) == 0;
	return 0;
}

/* Cheap filters for calls that are not worth a record. */
static __always_inline int wanted(const struct vigil_syscall_spec *spec, const __u64 *args)
{
	int anon = 0;

	if ((spec->flags & VIGIL_SPEC_PROT_EXEC) && !(args[2] & PROT_EXEC))
		return 0;
	if ((spec->flags & VIGIL_SPEC_MAP_ANON) && !(args[3] & MAP_ANONYMOUS))
		return 0;
	if (spec->flags & VIGIL_SPEC_ANON_VMA) {
		bpf_find_vma(bpf_get_current_task_btf(), args[0], anon_vma, &anon, 0);
		return anon;
	}
	return 1;
}

/* A 32-bit syscall has another number for the same name (ia32's 2 is fork,
 * x86-64's 2 is open): those are not reported rather than misreported. */
static __always_inline int is_compat(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->thread_info.status))
		return 0;
	return task->thread_info.status & TS_COMPAT;
}

/* === kernel-resolved paths === */

/* The struct mount a vfsmount is embedded in (the kernel's real_mount). */
static __always_inline struct mount *mount_of(struct vfsmount *vfsmnt)
{
	return (struct mount *)((char *)vfsmnt - bpf_core_field_offset(struct mount, mnt));
}

static __always_inline struct vfsmount *vfsmount_of(struct mount *mnt)
{
	return (struct vfsmount *)((char *)mnt + bpf_core_field_offset(struct mount, mnt));
}

/* The state of one path walk, carried between the bpf_loop steps. */
struct walk {
	struct vigil_resolved_path *out;
	struct dentry *root;
	struct vfsmount *root_mnt;
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	__u32 off;
	__u16 flags;
	__u16 count;
};

/* Appends the walk's dentry name to out->names; 0 when it did not fit or
 * the read failed (the reason is in walk->flags). */
static __always_inline int append_name(struct walk *walk)
{
	struct dentry *dentry = walk->dentry;
	const unsigned char *name = BPF_CORE_READ(dentry, d_name.name);
	__u32 at = walk->off;
	long copied;

	if (at >= VIGIL_NAMES_START) {
		walk->flags |= VIGIL_RESOLVE_TRUNCATED;
		return 0;
	}
	/* Keeps clang from dropping the mask the verifier needs. */
	barrier_var(at);
	copied = bpf_probe_read_kernel_str(&walk->out->names[at & (VIGIL_NAMES_START - 1)],
					   VIGIL_NAME_SLOT, name);
	if (copied <= 0) {
		walk->flags |= VIGIL_RESOLVE_READ_FAILED;
		return 0;
	}
	walk->off = at + copied;
	walk->count++;
	return 1;
}

/* One step up: the task's root ends the walk; a mount's root moves to the
 * mountpoint it is mounted on; any other dentry adds its name and moves to
 * its parent. Returns 1 to stop (bpf_loop's convention). */
static long walk_step(__u64 index, void *ctx)
{
	struct walk *walk = ctx;
	/* Copied out first: CO-RE reads must start from a kernel type. */
	struct dentry *dentry = walk->dentry;
	struct vfsmount *vfsmnt = walk->vfsmnt;
	struct mount *mnt = mount_of(vfsmnt);
	struct dentry *parent;
	struct mount *up;

	if (dentry == walk->root && vfsmnt == walk->root_mnt) {
		walk->flags |= VIGIL_RESOLVE_COMPLETE;
		return 1;
	}
	if (dentry == BPF_CORE_READ(vfsmnt, mnt_root)) {
		up = BPF_CORE_READ(mnt, mnt_parent);
		if (up == mnt) {
			walk->flags |= VIGIL_RESOLVE_OUTSIDE_ROOT;
			return 1;
		}
		walk->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		walk->vfsmnt = vfsmount_of(up);
		return 0;
	}
	parent = BPF_CORE_READ(dentry, d_parent);
	/* A filesystem root that is not its mount's root: a tree no mount
	 * shows (a detached mount). */
	if (dentry == parent) {
		walk->flags |= VIGIL_RESOLVE_OUTSIDE_ROOT;
		return 1;
	}
	if (!append_name(walk))
		return 1;
	walk->dentry = parent;
	return 0;
}

/* The path of `file` as the kernel's d_path gives it for the current task:
 * dentry names up to the task's root, crossing mounts. Where the walk
 * cannot finish, out->flags says why; it never guesses. bpf_loop keeps the
 * verifier to one pass over the step instead of one per iteration. */
static __always_inline void resolve_file(struct vigil_resolved_path *out, struct file *file)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
	struct inode *inode = BPF_CORE_READ(dentry, d_inode);
	struct walk walk = {
		.out = out,
		.root = BPF_CORE_READ(task, fs, root.dentry),
		.root_mnt = BPF_CORE_READ(task, fs, root.mnt),
		.dentry = dentry,
		.vfsmnt = BPF_CORE_READ(file, f_path.mnt),
	};
	long steps;

	out->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	out->ino = BPF_CORE_READ(inode, i_ino);
	if (!BPF_CORE_READ(dentry, d_hash.pprev) && BPF_CORE_READ(dentry, d_parent) != dentry)
		walk.flags |= VIGIL_RESOLVE_DELETED;
	steps = bpf_loop(VIGIL_PATH_DEPTH, walk_step, &walk, 0);
	if (steps == VIGIL_PATH_DEPTH && !(walk.flags & VIGIL_RESOLVE_COMPLETE))
		walk.flags |= VIGIL_RESOLVE_DEPTH_LIMIT;
	out->names_len = walk.off;
	out->flags = walk.flags;
	out->count = walk.count;
}

static __always_inline void no_resolved_path(struct vigil_resolved_path *out)
{
	out->dev = 0;
	out->ino = 0;
	out->names_len = 0;
	out->flags = 0;
	out->count = 0;
}

static __always_inline int is_open(__u32 nr)
{
	return nr == VIGIL_NR_OPEN || nr == VIGIL_NR_CREAT || nr == VIGIL_NR_OPENAT ||
	       nr == VIGIL_NR_OPENAT2;
}

/* === exit: syscall records === */

static __always_inline int is_memfd(struct file *file)
{
	const unsigned char *name = BPF_CORE_READ(file, f_path.dentry, d_name.name);
	char prefix[6] = {};

	bpf_probe_read_kernel(prefix, sizeof(prefix), name);
	return prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' &&
	       prefix[4] == 'd' && prefix[5] == ':';
}

/* The open file behind descriptor `fd` of the current process, or 0. */
static __always_inline struct file *file_of(__u64 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = 0;

	if (fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file;
}

static __always_inline __u8 fd_kind(struct file *file)
{
	struct socket *sock;
	unsigned short family;
	unsigned short mode;

	if (!file)
		return VIGIL_FD_UNKNOWN;
	mode = BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT;
	switch (mode) {
	case S_IFREG:
		return is_memfd(file) ? VIGIL_FD_MEMFD : VIGIL_FD_FILE;
	case S_IFDIR:
		return VIGIL_FD_DIRECTORY;
	case S_IFIFO:
		return VIGIL_FD_PIPE;
	case S_IFSOCK:
		break;
	default:
		return VIGIL_FD_OTHER;
	}
	sock = BPF_CORE_READ(file, private_data);
	family = BPF_CORE_READ(sock, sk, __sk_common.skc_family);
	switch (family) {
	case AF_INET:
		return VIGIL_FD_SOCKET_INET;
	case AF_INET6:
		return VIGIL_FD_SOCKET_INET6;
	case AF_UNIX:
		return VIGIL_FD_SOCKET_UNIX;
	default:
		return VIGIL_FD_OTHER;
	}
}

/* The local end of an inet socket (listen, accept), written as a sockaddr. */
static __always_inline void local_sockaddr(struct vigil_syscall_record *rec, struct file *file)
{
	struct socket *sock = BPF_CORE_READ(file, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 port = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_num));
	struct vigil_sockaddr_in6 in6 = {};
	struct vigil_sockaddr_in in = {};

	if (family == AF_INET) {
		in.family = family;
		in.port = port;
		BPF_CORE_READ_INTO(&in.addr, sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(rec->sys.local_sockaddr, &in, sizeof(in));
		rec->sys.local_sockaddr_len = sizeof(in);
	} else if (family == AF_INET6) {
		in6.family = family;
		in6.port = port;
		BPF_CORE_READ_INTO(&in6.addr, sk, __sk_common.skc_v6_rcv_saddr);
		__builtin_memcpy(rec->sys.local_sockaddr, &in6, sizeof(in6));
		rec->sys.local_sockaddr_len = sizeof(in6);
	}
}

static __always_inline void read_sockaddr(struct vigil_syscall_record *rec,
					  const struct vigil_syscall_spec *spec,
					  const struct call *call)
{
	const void *addr = (const void *)arg_at(call, spec->sockaddr_arg);
	__u64 len = arg_at(call, spec->sockaddr_len_arg);
	__u32 len_value = 0;

	rec->sys.sockaddr_len = 0;
	if (!addr)
		return;
	if (spec->flags & VIGIL_SPEC_SOCKLEN_PTR) {
		if (!len || bpf_probe_read_user(&len_value, sizeof(len_value), (const void *)len) < 0)
			return;
		len = len_value;
	}
	if (len > VIGIL_SOCKADDR_LEN)
		len = VIGIL_SOCKADDR_LEN;
	/* Without the barrier clang may pass the unclamped copy of len, which
	 * the verifier rejects as unbounded. */
	barrier_var(len);
	if (len == 0)
		return;
	if (bpf_probe_read_user(rec->sys.sockaddr, len, addr) < 0) {
		rec->hdr.flags |= VIGIL_FLAG_READ_FAILED;
		return;
	}
	rec->sys.sockaddr_len = len;
}

static __always_inline void read_strings(struct vigil_syscall_record *rec,
					 const struct vigil_syscall_spec *spec,
					 const struct call *call)
{
	const char *ptr;
	long copied;

	rec->sys.path_len = 0;
	rec->sys.path2_len = 0;
	rec->sys.path[0] = 0;
	rec->sys.path2[0] = 0;
	rec->sys.str3[0] = 0;
	ptr = (const char *)arg_at(call, spec->str_args[0]);
	if (spec->str_args[0]) {
		copied = bpf_probe_read_user_str(rec->sys.path, sizeof(rec->sys.path), ptr);
		rec->sys.path_len = str_len(copied, VIGIL_PATH_LEN, &rec->hdr.flags);
	}
	ptr = (const char *)arg_at(call, spec->str_args[1]);
	if (spec->str_args[1]) {
		copied = bpf_probe_read_user_str(rec->sys.path2, sizeof(rec->sys.path2), ptr);
		rec->sys.path2_len = str_len(copied, VIGIL_PATH_LEN, &rec->hdr.flags);
	}
	ptr = (const char *)arg_at(call, spec->str_args[2]);
	/* A NULL fs type (bind mounts, remounts) is not a failed read. */
	if (spec->str_args[2] && ptr)
		bpf_probe_read_user_str(rec->sys.str3, sizeof(rec->sys.str3), ptr);
}

static __always_inline void emit_syscall(const struct vigil_syscall_spec *spec,
					 const struct call *call, long ret)
{
	struct vigil_syscall_record *rec = reserve(sizeof(*rec));
	const void *deref;

	if (!rec)
		return;
	fill_header(&rec->hdr, VIGIL_KIND_SYSCALL, (__u16)call->nr, ret);
	__builtin_memcpy(rec->sys.args, call->args, sizeof(rec->sys.args));
	__builtin_memset(rec->sys.reserved, 0, sizeof(rec->sys.reserved));
	__builtin_memset(rec->sys.deref, 0, sizeof(rec->sys.deref));
	read_strings(rec, spec, call);
	read_sockaddr(rec, spec, call);
	rec->sys.fd_kind = VIGIL_FD_UNKNOWN;
	rec->sys.local_sockaddr_len = 0;
	if (spec->fd_arg) {
		struct file *file = file_of(arg_at(call, spec->fd_arg));

		rec->sys.fd_kind = fd_kind(file);
		if ((spec->flags & VIGIL_SPEC_SOCK_LOCAL) && (rec->sys.fd_kind == VIGIL_FD_SOCKET_INET ||
							      rec->sys.fd_kind == VIGIL_FD_SOCKET_INET6))
			local_sockaddr(rec, file);
	}
	deref = (const void *)arg_at(call, spec->deref_arg);
	if (deref && bpf_probe_read_user(rec->sys.deref, sizeof(rec->sys.deref), deref) < 0)
		rec->hdr.flags |= VIGIL_FLAG_READ_FAILED;
	no_resolved_path(&rec->sys.resolved);
	if (ret >= 0 && is_open(call->nr)) {
		struct file *file = file_of(ret);

		if (file)
			resolve_file(&rec->sys.resolved, file);
	}
	submit(rec);
}

/* === exec === */

#define VIGIL_MAX_ARGS 32
#define VIGIL_ARG_SLICE (VIGIL_ARGV_LEN / 2)

/* Copies a user argv array: each argument starts in the first half of the
 * buffer and may run at most half a buffer, which keeps every copy in
 * bounds for the verifier. */
static __always_inline void read_user_argv(struct vigil_exec_record *rec, const char *const *argv)
{
	__u32 off = 0;
	const char *arg;
	long copied;

	for (int i = 0; i < VIGIL_MAX_ARGS; i++) {
		if (off >= VIGIL_ARG_SLICE) {
			rec->hdr.flags |= VIGIL_FLAG_ARGV_TRUNCATED;
			break;
		}
		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) < 0) {
			rec->hdr.flags |= VIGIL_FLAG_READ_FAILED;
			break;
		}
		if (!arg)
			break;
		/* Keeps clang from dropping the mask the verifier needs. */
		barrier_var(off);
		copied = bpf_probe_read_user_str(&rec->exec.argv[off & (VIGIL_ARG_SLICE - 1)],
						 VIGIL_ARG_SLICE, arg);
		if (copied <= 0) {
			rec->hdr.flags |= VIGIL_FLAG_READ_FAILED;
			break;
		}
		off += copied;
	}
	rec->exec.argv_len = off;
}

static __always_inline void emit_failed_exec(const struct vigil_syscall_spec *spec,
					     const struct call *call, long ret)
{
	struct vigil_exec_record *rec = reserve(sizeof(*rec));
	long copied;

	if (!rec)
		return;
	fill_header(&rec->hdr, VIGIL_KIND_EXEC, (__u16)call->nr, ret);
	copied = bpf_probe_read_user_str(rec->exec.filename, sizeof(rec->exec.filename),
					 (const char *)arg_at(call, spec->str_args[0]));
	rec->exec.filename_len = str_len(copied, VIGIL_PATH_LEN, &rec->hdr.flags);
	read_user_argv(rec, (const char *const *)arg_at(call, spec->argv_arg));
	no_resolved_path(&rec->exec.resolved);
	submit(rec);
}

SEC("tp_btf/sys_exit")
int vigil_sys_exit(__u64 *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	long ret = (long)ctx[1];
	long nr = (long)regs->orig_ax;
	struct vigil_syscall_spec *spec = spec_of(nr);
	struct call call;

	if (!spec || is_self() || is_compat(bpf_get_current_task_btf()))
		return 0;
	call.nr = (__u32)nr;
	call.args[0] = regs->di;
	call.args[1] = regs->si;
	call.args[2] = regs->dx;
	call.args[3] = regs->r10;
	call.args[4] = regs->r8;
	call.args[5] = regs->r9;
	if (!wanted(spec, call.args))
		return 0;
	if (spec->flags & VIGIL_SPEC_EXEC) {
		/* A successful exec was reported by sched_process_exec (and its
		 * registers are the new program's by now). */
		if (ret < 0)
			emit_failed_exec(spec, &call, ret);
		return 0;
	}
	emit_syscall(spec, &call, ret);
	return 0;
}

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
	barrier_var(len); /* see read_sockaddr */
	if (bpf_probe_read_user(rec->exec.argv, len, (const void *)start) < 0) {
		rec->hdr.flags |= VIGIL_FLAG_READ_FAILED;
		return;
	}
	rec->exec.argv_len = len;
}

/* sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm) */
SEC("tp_btf/sched_process_exec")
int vigil_exec(__u64 *ctx)
{
	struct linux_binprm *bprm = (struct linux_binprm *)ctx[2];
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs;
	struct vigil_syscall_spec *spec;
	struct vigil_exec_record *rec;
	__u16 nr = VIGIL_NO_SYSCALL;
	long copied;

	if (!spec_of(VIGIL_SLOT_EXEC) || is_self())
		return 0;
	/* The execve or execveat this exec completes (none for an exec the
	 * kernel starts itself, such as a usermode helper's). */
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	spec = regs ? spec_of((long)regs->orig_ax) : 0;
	if (spec && (spec->flags & VIGIL_SPEC_EXEC))
		nr = (__u16)regs->orig_ax;
	rec = reserve(sizeof(*rec));
	if (!rec)
		return 0;
	fill_header(&rec->hdr, VIGIL_KIND_EXEC, nr, 0);
	copied = bpf_probe_read_kernel_str(rec->exec.filename, sizeof(rec->exec.filename),
					   BPF_CORE_READ(bprm, filename));
	rec->exec.filename_len = str_len(copied, VIGIL_PATH_LEN, &rec->hdr.flags);
	read_argv(rec, (struct task_struct *)task);
	resolve_file(&rec->exec.resolved, BPF_CORE_READ(bprm, file));
	submit(rec);
	return 0;
}

/* === exit === */

/* sched_process_exit(struct task_struct *p, ...): reported once per
 * process, by its last thread. */
SEC("tp_btf/sched_process_exit")
int vigil_exit(__u64 *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0];
	struct vigil_exit_record *rec;

	if (!spec_of(VIGIL_SLOT_EXIT) || is_self())
		return 0;
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	rec = reserve(sizeof(*rec));
	if (!rec)
		return 0;
	fill_header(&rec->hdr, VIGIL_KIND_EXIT, VIGIL_NO_SYSCALL, 0);
	rec->exit.exit_code = BPF_CORE_READ(task, exit_code);
	rec->exit.reserved = 0;
	submit(rec);
	return 0;
}
