//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TripWire's file tripwires: the LSM hooks of the VFS (file_open and the
 * inode hooks of unlink, rmdir, create, mkdir, rename and setattr), attached
 * either as fentry programs on the security_* functions (any kernel with BTF
 * and ftrace direct calls) or as BPF LSM programs (where "bpf" is an active
 * LSM). Either way the opener is never held: the program runs inline, counts
 * and returns, and the agent reads the results later.
 *
 * Files are matched by (dev, inode) against file_watches, walking up the
 * dentry tree for directory rules. A match is counted in file_trips; only
 * the first trip of a (file, rule, operation, process) reaches the ring
 * buffer, with everything the agent needs to attribute it, so a read flood
 * costs one hash update per open.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "tripwire.h"
#include "lib/task.h"
#include "lib/stats.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define FMODE_WRITE 0x2
#define FMODE_PATH 0x4000
#define S_IFMT 00170000
#define S_IFDIR 0040000
#define ATTR_SIZE (1 << 3)

/* Set by the agent before load. */
const volatile __u32 self_tgid = 0;  /* the agent's own accesses are not trips */
/* Parent levels worth walking: 0 without directory rules (a file rule's
 * directory matters only to creates and renames), 1 without recursive ones. */
const volatile __u32 walk_depth = 1;

/* Watched inodes; see tripwire.h for what each kind covers. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct inode_key);
	__type(value, struct file_watch);
} file_watches SEC(".maps");

/* Filesystems holding a watched inode: a file elsewhere costs one lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, __u8);
} file_devs SEC(".maps");

/*
 * A bit per inode number (folded), set by the agent for every inode in
 * file_watches, before it puts them there: an open of an unwatched file,
 * nearly every open on the host, is told apart by one load instead of a hash
 * lookup (~45 ns on the reference machine, a call and return under its
 * return-stack mitigation). Other inodes may share a bit; the lookup
 * decides. An array in .bss, which the agent writes through its mapping.
 */
#define FILE_INO_BITS (1 << 18) /* a power of two; 32 KiB */
__u64 file_ino_bits[FILE_INO_BITS / 64];

static __always_inline bool maybe_watched(__u64 ino)
{
	__u64 bit = (ino ^ (ino >> 32)) & (FILE_INO_BITS - 1);
	return file_ino_bits[bit / 64] & (1ULL << (bit % 64));
}

/* Trip counters; entries live until their process has exited and the agent
 * has reported their last count. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct file_trip_key);
	__type(value, struct file_trip_count);
} file_trips SEC(".maps");

/* 512 KiB: one record per new (process, file, operation), each only as long
 * as its names and command line (a few hundred bytes for a short path and
 * command line, ~14 KB at most), so a stalled reader has ~1,000 typical
 * records of slack; when it fills, counts still stand (the record is
 * counted as undetailed). The agent maps it twice over, so twice its size
 * is resident in the agent: sized for a burst, not a flood. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 19);
} file_events SEC(".maps");

/* A record is built here at its largest and only its used bytes are copied
 * to the ring buffer: a reservation must be sized before the names and argv
 * are read. */
struct file_record {
	struct file_event e;
	char data[TW_FILE_DATA_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct file_record);
} file_scratch SEC(".maps");

/* The boot time last read on this CPU, and the jiffy it was read in. */
struct trip_clock {
	__u64 jiffies;
	__u64 boot_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct trip_clock);
} trip_clocks SEC(".maps");

/*
 * trip_time is the boot time of a counted trip, to the jiffy: a call of
 * bpf_ktime_get_boot_ns cost ~50 ns on the reference machine, a quarter of a
 * counted open (bench/file), so the clock is read once per jiffy per CPU and
 * reused within it. A count's time only dates its summary, sent each second.
 */
static __always_inline __u64 trip_time(void)
{
	__u32 zero = 0;
	struct trip_clock *c = bpf_map_lookup_elem(&trip_clocks, &zero);
	if (!c)
		return bpf_ktime_get_boot_ns();
	__u64 j = bpf_jiffies64();
	if (c->jiffies != j) {
		c->jiffies = j;
		c->boot_ns = bpf_ktime_get_boot_ns();
	}
	return c->boot_ns;
}

const struct file_event *unused_file_event __attribute__((unused));
const struct file_trip_count *unused_file_trip_count __attribute__((unused));
const enum tw_watch_kind *unused_tw_watch_kind __attribute__((unused));
const enum tw_file_op *unused_tw_file_op __attribute__((unused));
const enum tw_file_flag *unused_tw_file_flag __attribute__((unused));
const enum tw_record_state *unused_tw_record_state __attribute__((unused));

/* A match: the watched inode found and how far above the file it is. */
struct match {
	struct inode_key anchor;
	struct file_watch watch;
	__u32 depth;
	__u64 ino; /* the file's own inode number; 0 for a name being created */
};

/*
 * match_dentry walks from d up to walk_depth parents and reports the nearest
 * watched inode whose kind covers that distance. A negative dentry (a name
 * being created) has no inode of its own; its directory is checked.
 */
static __always_inline bool match_dentry(struct dentry *d, __u32 op, struct match *m)
{
	m->ino = 0;
	/* Direct loads through BTF-typed pointers, which the verifier makes
	 * fault-safe, not bpf_probe_read_kernel calls: this runs for every
	 * open on the host, where every call counts (docs/capabilities.md). */
	__u64 dev = d->d_sb->s_dev;
	/* Without parents to walk, the inode's own lookup is the only one. */
	if (walk_depth > 0 && !bpf_map_lookup_elem(&file_devs, &dev))
		return false;
	__u32 depth = walk_depth;
	if (depth == 0 && (op == TW_FILE_CREATE || op == TW_FILE_RENAME))
		depth = 1;
	for (__u32 i = 0; i < TW_FILE_DEPTH; i++) {
		if (i > depth)
			return false;
		struct inode *inode = d->d_inode;
		if (inode) {
			struct inode_key k = { .dev = dev, .ino = inode->i_ino };
			if (i == 0)
				m->ino = k.ino;
			struct file_watch *w = maybe_watched(k.ino) ? bpf_map_lookup_elem(&file_watches, &k) : NULL;
			if (w) {
				__u32 kind = w->kind;
				bool covers = (i == 0 && kind != TW_WATCH_PARENT) ||
					      (i == 1 && (kind == TW_WATCH_DIR || kind == TW_WATCH_TREE)) ||
					      (i == 1 && kind == TW_WATCH_PARENT &&
					       (op == TW_FILE_CREATE || op == TW_FILE_RENAME)) ||
					      kind == TW_WATCH_TREE;
				if (covers) {
					m->anchor = k;
					m->watch = *w;
					m->depth = i;
					return true;
				}
			}
		}
		struct dentry *parent = d->d_parent;
		if (parent == d)
			return false;
		d = parent;
	}
	return false;
}

/* record_names writes up to max names of d and its parents, leaf first,
 * stopping at the filesystem root; it returns the names written and sets
 * *root when the root was reached. */
static __always_inline __u32 record_names(char names[TW_FILE_DEPTH][TW_FILE_NAME_LEN], struct dentry *d,
					  __u32 max, bool *root)
{
	__u32 i;
	*root = false;
	for (i = 0; i < TW_FILE_DEPTH; i++) {
		if (i >= max)
			return i;
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		if (parent == d) {
			*root = true;
			return i;
		}
		if (bpf_probe_read_kernel_str(names[i], TW_FILE_NAME_LEN, BPF_CORE_READ(d, d_name.name)) < 0)
			names[i][0] = 0;
		d = parent;
	}
	return i;
}

/* bounded is the count at *p, at most max. Read back from the record, not
 * kept in a register, it is a range to the verifier: a count it knew
 * exactly would make it walk the rest of the record once per value. */
static __always_inline __u32 bounded(const __u32 *p, __u32 max)
{
	__u32 v = *(const volatile __u32 *)p;
	asm volatile("" : "+r"(v));
	return v > max ? max : v;
}

/* at_most is v, at most max, with a bound the verifier sees at the use,
 * however clang computed v. */
static __always_inline __u64 at_most(__u64 v, __u64 max)
{
	asm volatile("" : "+r"(v));
	return v > max ? max : v;
}

/* lost_record counts a trip whose record did not reach the ring buffer: an
 * aggregated one still counts, without its actor (undetailed). */
static __always_inline void lost_record(struct file_trip_key *key, __u32 flags)
{
	if (flags & TW_FILE_AGGREGATED) {
		struct file_trip_count *c = bpf_map_lookup_elem(&file_trips, key);
		if (c)
			c->record = TW_RECORD_LOST;
		stat_inc(TW_STAT_FILE_UNDETAILED);
	} else {
		stat_inc(TW_STAT_FILE_LOST);
	}
}

/* trip counts one matched operation and, for the first of its kind, puts a
 * record on the ring buffer. to is the new name of a rename. */
static __always_inline void trip(struct dentry *d, __u32 op, struct match *m, struct dentry *to, __u32 flags)
{
	/* A trusted pointer: direct loads, not helper calls, on the path every
	 * counted open takes; the file's inode number came with the match. */
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid = task->tgid;
	if (tgid == self_tgid)
		return;
	__u64 now = trip_time();
	struct file_trip_key key = {
		.dev = m->anchor.dev,
		.ino = m->ino,
		/* The process's start, as /proc/PID/stat gives it: the opening
		 * thread's own start differs in a multi-threaded process, which
		 * made live processes look exited and their counters reaped. */
		.start_ns = task->group_leader->start_boottime,
		.exec_id = task->self_exec_id,
		.tgid = tgid,
		.rule = m->watch.rule,
		.op = op,
	};

	/* Creates, deletes and renames are rare and each is its own trip;
	 * opens and attribute changes come in floods and are counted. */
	if (op == TW_FILE_ACCESS || op == TW_FILE_MODIFY || op == TW_FILE_ATTRIB) {
		struct file_trip_count *c = bpf_map_lookup_elem(&file_trips, &key);
		if (c) {
			__sync_fetch_and_add(&c->count, 1);
			c->last_ns = now;
			return;
		}
		struct file_trip_count first = { .count = 1, .last_ns = now, .record = TW_RECORD_PENDING };
		if (bpf_map_update_elem(&file_trips, &key, &first, BPF_NOEXIST) == 0) {
			flags |= TW_FILE_AGGREGATED;
		} else {
			/* Another CPU inserted it meanwhile, or the map is full. */
			c = bpf_map_lookup_elem(&file_trips, &key);
			if (c) {
				__sync_fetch_and_add(&c->count, 1);
				c->last_ns = now;
				return;
			}
			stat_inc(TW_STAT_FILE_UNAGGREGATED);
		}
	}

	__u32 zero = 0;
	struct file_record *r = bpf_map_lookup_elem(&file_scratch, &zero);
	if (!r) {
		lost_record(&key, flags);
		return;
	}
	struct file_event *e = &r->e;
	e->boot_ns = bpf_ktime_get_boot_ns(); /* a record is rare: the exact time */
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->key = key;
	e->anchor_dev = m->anchor.dev;
	e->anchor_ino = m->anchor.ino;
	e->pid = task->pid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	__u64 ugid = bpf_get_current_uid_gid();
	e->uid = (__u32)ugid;
	e->gid = ugid >> 32;
	e->kind = m->watch.kind;
	struct inode *inode = BPF_CORE_READ(d, d_inode);
	if (inode && (BPF_CORE_READ(inode, i_mode) & S_IFMT) == S_IFDIR)
		flags |= TW_FILE_DIR;
	e->task_flags = 0;
	e->pad = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	bool root;
	/* The watched side's names stop at the anchor, whose path the agent knows. */
	e->depth = record_names((void *)r->data, d, m->depth, &root);
	__u64 off = bounded(&e->depth, TW_FILE_DEPTH) * TW_FILE_NAME_LEN;
	e->to_depth = 0;
	e->to_dev = 0;
	if (to) {
		e->to_dev = BPF_CORE_READ(to, d_sb, s_dev);
		e->to_depth = record_names((void *)(r->data + at_most(off, TW_FILE_DEPTH * TW_FILE_NAME_LEN)), to, TW_FILE_DEPTH, &root);
		if (root)
			flags |= TW_FILE_TO_ROOT;
		off += bounded(&e->to_depth, TW_FILE_DEPTH) * TW_FILE_NAME_LEN;
	}

	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	e->exe_n = exe ? tw_resolve_path((void *)(r->data + at_most(off, 2 * TW_FILE_DEPTH * TW_FILE_NAME_LEN)), &e->task_flags, exe) : 0;
	off += bounded(&e->exe_n, TW_PATH_DEPTH) * TW_NAME_LEN;
	e->args_len = tw_read_args(r->data + at_most(off, TW_FILE_DATA_LEN - TW_ARGS_LEN), &e->task_flags, task);
	off += bounded(&e->args_len, TW_ARGS_LEN);
	e->flags = flags;

	if (flags & TW_FILE_AGGREGATED) {
		struct file_trip_count *c = bpf_map_lookup_elem(&file_trips, &key);
		if (c)
			c->record = TW_RECORD_SENT;
	}
	/* The scratch is this CPU's, but a preempted program may find another
	 * task's first trip written over its own: never send a mixed record. */
	if (e->pid != task->pid || e->key.start_ns != key.start_ns ||
	    bpf_ringbuf_output(&file_events, r, sizeof(*e) + at_most(off, TW_FILE_DATA_LEN), 0)) {
		lost_record(&key, flags);
		return;
	}
	stat_inc(TW_STAT_FILE_SENT);
}

static __always_inline void on_dentry(struct dentry *d, __u32 op)
{
	struct match m = {};
	if (match_dentry(d, op, &m))
		trip(d, op, &m, NULL, 0);
}

static __always_inline void on_open(struct file *file)
{
	__u32 mode = file->f_mode;
	/* An O_PATH descriptor reads nothing (and the LSM hook never sees one). */
	if (mode & FMODE_PATH)
		return;
	__u32 op = mode & FMODE_WRITE ? TW_FILE_MODIFY : TW_FILE_ACCESS;
	on_dentry(file->f_path.dentry, op);
}

static __always_inline void on_setattr(struct dentry *d, struct iattr *attr)
{
	on_dentry(d, attr->ia_valid & ATTR_SIZE ? TW_FILE_MODIFY : TW_FILE_ATTRIB);
}

/* A rename trips if either side is watched: moving a decoy away, or putting
 * something in its place. The record's names are those of the side that
 * matched; TW_FILE_INTO says it was the new one. */
static __always_inline void on_rename(struct dentry *from, struct dentry *to)
{
	struct match m = {};
	if (match_dentry(from, TW_FILE_RENAME, &m))
		trip(from, TW_FILE_RENAME, &m, to, 0);
	else if (match_dentry(to, TW_FILE_RENAME, &m))
		trip(to, TW_FILE_RENAME, &m, from, TW_FILE_INTO);
}

/* The same hooks twice: fentry on the security_* functions, and BPF LSM.
 * The agent attaches one set. LSM programs return 0: TripWire never denies. */

SEC("fentry/security_file_open")
int BPF_PROG(tw_file_open, struct file *file)
{
	on_open(file);
	return 0;
}

SEC("fentry/security_inode_setattr")
int BPF_PROG(tw_inode_setattr, struct mnt_idmap *idmap, struct dentry *dentry, struct iattr *attr)
{
	on_setattr(dentry, attr);
	return 0;
}

SEC("fentry/security_inode_create")
int BPF_PROG(tw_inode_create, struct inode *dir, struct dentry *dentry)
{
	on_dentry(dentry, TW_FILE_CREATE);
	return 0;
}

SEC("fentry/security_inode_mkdir")
int BPF_PROG(tw_inode_mkdir, struct inode *dir, struct dentry *dentry)
{
	on_dentry(dentry, TW_FILE_CREATE);
	return 0;
}

SEC("fentry/security_inode_unlink")
int BPF_PROG(tw_inode_unlink, struct inode *dir, struct dentry *dentry)
{
	on_dentry(dentry, TW_FILE_DELETE);
	return 0;
}

SEC("fentry/security_inode_rmdir")
int BPF_PROG(tw_inode_rmdir, struct inode *dir, struct dentry *dentry)
{
	on_dentry(dentry, TW_FILE_DELETE);
	return 0;
}

SEC("fentry/security_inode_rename")
int BPF_PROG(tw_inode_rename, struct inode *old_dir, struct dentry *old_dentry, struct inode *new_dir,
	     struct dentry *new_dentry)
{
	on_rename(old_dentry, new_dentry);
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(tw_lsm_file_open, struct file *file)
{
	on_open(file);
	return 0;
}

SEC("lsm/inode_setattr")
int BPF_PROG(tw_lsm_inode_setattr, struct mnt_idmap *idmap, struct dentry *dentry, struct iattr *attr)
{
	on_setattr(dentry, attr);
	return 0;
}

SEC("lsm/inode_create")
int BPF_PROG(tw_lsm_inode_create, struct inode *dir, struct dentry *dentry)
{
	on_dentry(dentry, TW_FILE_CREATE);
	return 0;
}

SEC("lsm/inode_mkdir")
int BPF_PROG(tw_lsm_inode_mkdir, struct inode *dir, struct dentry *dentry)
{
	on_dentry(dentry, TW_FILE_CREATE);
	return 0;
}

SEC("lsm/inode_unlink")
int BPF_PROG(tw_lsm_inode_unlink, struct inode *dir, struct dentry *dentry)
{
	on_dentry(dentry, TW_FILE_DELETE);
	return 0;
}

SEC("lsm/inode_rmdir")
int BPF_PROG(tw_lsm_inode_rmdir, struct inode *dir, struct dentry *dentry)
{
	on_dentry(dentry, TW_FILE_DELETE);
	return 0;
}

SEC("lsm/inode_rename")
int BPF_PROG(tw_lsm_inode_rename, struct inode *old_dir, struct dentry *old_dentry, struct inode *new_dir,
	     struct dentry *new_dentry)
{
	on_rename(old_dentry, new_dentry);
	return 0;
}

/*
 * Where neither fentry nor the BPF LSM may load (a locked-down kernel that
 * refuses them, as some sandboxes do), opens are caught at the exit of the
 * open family of system calls: the new descriptor is looked up in the task's
 * file table. This sees open(2), openat(2), openat2(2) and creat(2) only (not
 * their 32-bit compat forms), not opens made inside the kernel (exec,
 * io_uring), and no creates, deletes, renames or attribute changes.
 *
 * The program is attached to each syscalls/sys_exit_<name> tracepoint of the
 * family the kernel has (the agent lists them), not to the raw sys_exit one:
 * the kernel's dispatcher then tests a bitmap of enabled system calls and
 * runs no program at all for the other system calls, which every task on the
 * host makes. Attaching either flags every task for the kernel's
 * system-call tracing path, which no program can avoid.
 */

/* The tracepoint's record, as events/syscalls/sys_exit_openat/format gives
 * it; the kernel puts its pt_regs pointer where the common fields are. */
struct sys_exit_record {
	__u64 common;
	__s32 nr;
	__s64 ret;
};

/* Kernel 6.2+; costs nothing at run time. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

SEC("tracepoint/syscalls/sys_exit_openat")
int tw_sys_exit_open(struct sys_exit_record *ctx)
{
	long ret = ctx->ret;

	if (ret < 0)
		return 0;
	/* Direct loads through the task's BTF pointer, not helper calls: this
	 * runs for every open on the host. */
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt;
	if ((unsigned long)ret >= fdt->max_fds)
		return 0;
	struct file **fds = fdt->fd;
	struct file *f = NULL;
	/* The descriptor table is an array of pointers, which BTF cannot
	 * type, so the verifier would only let bpf_probe_read_kernel read a
	 * slot: a helper call, ~55 ns of an unwatched open's ~150 on the
	 * reference machine. Seen through bpf_rdonly_cast (inlined by the verifier) as a
	 * struct whose first member is a struct file pointer, the slot is one
	 * fault-safe load, and the file's fields are direct loads after it.
	 * The offset check is resolved at load time. */
	if (bpf_core_field_offset(struct kiocb, ki_filp) == 0) {
		struct kiocb *slot = bpf_rdonly_cast(&fds[ret], bpf_core_type_id_kernel(struct kiocb));
		f = slot->ki_filp;
	} else if (bpf_probe_read_kernel(&f, sizeof(f), &fds[ret])) {
		return 0;
	}
	if (!f)
		return 0;
	on_open(bpf_rdonly_cast(f, bpf_core_type_id_kernel(struct file)));
	return 0;
}
