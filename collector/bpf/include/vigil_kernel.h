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
/* bpf_helper_defs.h declares helpers with it. */
typedef __u32 __wsum;

/* UAPI values (stable by definition) used by the map definitions. */
enum bpf_map_type {
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_ARRAY_OF_MAPS = 12,
	BPF_MAP_TYPE_RINGBUF = 27,
};

#define BPF_RB_AVAIL_DATA 0
#define BPF_RB_NO_WAKEUP 1
#define BPF_RB_FORCE_WAKEUP 2

#define PROT_EXEC 0x4
#define MAP_ANONYMOUS 0x20

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFREG 0100000
#define S_IFDIR 0040000
#define S_IFIFO 0010000

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct {
	unsigned int val;
} kuid_t;

typedef struct {
	int counter;
} atomic_t;

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
};

struct file;

struct vm_area_struct {
	struct file *vm_file;
};

struct signal_struct {
	atomic_t live; /* threads not yet exited */
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct super_block {
	__u32 s_dev; /* dev_t */
};

struct inode {
	unsigned short i_mode;
	unsigned long i_ino;
	struct super_block *i_sb;
};

struct qstr {
	const unsigned char *name;
};

struct hlist_bl_node {
	struct hlist_bl_node **pprev; /* NULL: unhashed */
};

struct dentry {
	struct qstr d_name;
	struct dentry *d_parent; /* itself at a filesystem's root */
	struct hlist_bl_node d_hash;
	struct inode *d_inode;
};

struct vfsmount {
	struct dentry *mnt_root;
};

/* The vfsmount is embedded in it: see mount_of in vigil.bpf.c. */
struct mount {
	struct mount *mnt_parent; /* itself at the root of a namespace */
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};

struct fs_struct {
	struct path root;
};

struct file {
	struct path f_path; /* memfds are named "memfd:<name>" */
	struct inode *f_inode;
	void *private_data; /* struct socket * for sockets */
};

struct in6_addr {
	__u8 s6_addr[16];
};

struct sock_common {
	unsigned short skc_family;
	__be32 skc_rcv_saddr;
	unsigned short skc_num; /* local port, host byte order */
	struct in6_addr skc_v6_rcv_saddr;
};

struct sock {
	struct sock_common __sk_common;
};

struct socket {
	struct sock *sk;
};

/* x86: TS_COMPAT in status marks a 32-bit syscall in progress. */
struct thread_info {
	__u32 status;
};

#define TS_COMPAT 0x0002

struct ns_common {
	unsigned int inum;
};

struct mnt_namespace {
	struct ns_common ns;
};

struct nsproxy {
	struct mnt_namespace *mnt_ns;
};

struct task_struct {
	struct thread_info thread_info;
	int pid;
	int tgid;
	int exit_code;
	struct task_struct *real_parent;
	struct mm_struct *mm;
	struct files_struct *files;
	struct fs_struct *fs;
	struct signal_struct *signal;
	kuid_t loginuid; /* only with CONFIG_AUDIT: checked with bpf_core_field_exists */
	struct nsproxy *nsproxy;
	/* u64 since Linux 5.7, u32 before: only the low 32 bits are used, which
	 * are the first four bytes either way on little-endian x86-64. */
	__u64 self_exec_id;
};

struct linux_binprm {
	const char *filename;
	struct file *file;
};

/* x86_64 only: the registers syscall arguments arrive in. */
struct pt_regs {
	unsigned long r10;
	unsigned long r9;
	unsigned long r8;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
};

#pragma clang attribute pop

/* User-space sockaddr layouts (UAPI, fixed). */
struct vigil_sockaddr_in {
	__u16 family;
	__be16 port;
	__u8 addr[4];
	__u8 zero[8];
};

struct vigil_sockaddr_in6 {
	__u16 family;
	__be16 port;
	__u32 flowinfo;
	__u8 addr[16];
	__u32 scope_id;
};

#endif /* VIGIL_KERNEL_H */
