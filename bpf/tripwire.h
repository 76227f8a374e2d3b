/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tripwire.h is the wire contract between TripWire's eBPF programs and the
 * agent: the records the programs put on their ring buffers, the keys of the
 * maps the agent fills, and the counters it reads. The Go types are generated
 * from it by bpf2go (see gen.go); change it only together with the Go side.
 */
#ifndef TRIPWIRE_H
#define TRIPWIRE_H

/* TASK_COMM_LEN: the kernel truncates comm to 15 bytes plus NUL. */
#define TW_COMM_LEN 16
/* The path as passed to execve; longer paths are cut and flagged. */
#define TW_PATH_LEN 512
/*
 * argv is read in-kernel up to TW_ARGS_LEN bytes (NUL-separated, as in
 * /proc/PID/cmdline); longer command lines are cut and flagged.
 * A power of two so the verifier can bound reads with a mask.
 */
#define TW_ARGS_LEN 4096

/*
 * The resolved path of the loaded binary is walked in-kernel from its dentry
 * up to the root of its mount namespace, one component per slot, leaf first:
 * at most TW_PATH_DEPTH slots of TW_NAME_LEN bytes. A crossing into a parent
 * mount uses a slot and leaves it empty. Deeper paths set
 * TW_EXEC_RESOLVED_PARTIAL; longer names are cut and set
 * TW_EXEC_RESOLVED_CUT. User space then prefers /proc/PID/exe.
 */
#define TW_PATH_DEPTH 24
#define TW_NAME_LEN 64

/* Why an exec reached user space: which watched-map lookups hit. */
enum tw_exec_match {
	TW_MATCH_NAME = 1,  /* comm is in exec_names */
	TW_MATCH_INODE = 2, /* the binary's (dev, inode) is in exec_inodes */
	TW_MATCH_SIZE = 4,  /* the binary's size is in exec_sizes (copy check) */
};

/* exec_event.flags */
enum tw_exec_flag {
	TW_EXEC_ARGS_TRUNCATED = 1, /* argv was longer than TW_ARGS_LEN */
	TW_EXEC_PATH_TRUNCATED = 2, /* the exec'd path was longer than TW_PATH_LEN */
	TW_EXEC_ARGS_UNREAD = 4,    /* argv could not be read (user space falls back to /proc) */
	TW_EXEC_RESOLVED_PARTIAL = 8, /* the walk did not reach the root within TW_PATH_DEPTH */
	TW_EXEC_RESOLVED_CUT = 16,    /* a component was longer than TW_NAME_LEN - 1 */
};

/* Indexes of the per-CPU counters in the stats map. */
enum tw_stat {
	TW_STAT_EXEC_SEEN = 0,   /* every exec the program ran for */
	TW_STAT_EXEC_SENT = 1,   /* execs that matched and were submitted */
	TW_STAT_EXEC_LOST = 2,   /* matched execs lost: ring buffer reserve failed */
	TW_STAT_NET_SENT = 3,    /* connections and probes submitted */
	TW_STAT_NET_LOST = 4,    /* connections and probes lost: reserve failed */
	TW_STAT_FILE_SENT = 5,   /* file records submitted */
	TW_STAT_FILE_LOST = 6,   /* file trips lost: not aggregated and reserve failed */
	TW_STAT_FILE_UNDETAILED = 7, /* aggregated file trips whose record was lost: counted, actor unknown */
	TW_STAT_FILE_UNAGGREGATED = 8, /* file_trips was full: the trip went out as its own record */
	TW_STAT_MAX = 9,
};

/* net_event.kind */
enum tw_net_kind {
	TW_NET_ACCEPT = 1, /* an inbound TCP connection reached ESTABLISHED */
	TW_NET_PROBE = 2,  /* a SYN to a port with no listener was answered by a reset */
};

/* Key of exec_inodes. dev is the kernel's encoding (major << 20 | minor). */
struct inode_key {
	__u64 dev;
	__u64 ino;
};

/* One exec of a watched binary, from sched_process_exec. */
struct exec_event {
	__u64 boot_ns;   /* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id;
	__u64 dev;       /* of the binary actually loaded (symlinks resolved) */
	__u64 ino;
	__u64 size;
	__u32 pid;       /* tgid, in the initial PID namespace */
	__u32 ppid;
	__u32 uid;       /* real uid after exec */
	__u32 euid;
	__u32 match;     /* enum tw_exec_match bits */
	__u32 flags;     /* enum tw_exec_flag bits */
	__u32 argc;
	__u32 args_len;  /* bytes valid in args */
	__u32 resolved_n; /* slots of resolved the walk used */
	__u32 pad;
	char comm[TW_COMM_LEN];
	char filename[TW_PATH_LEN]; /* the path as passed to execve, NUL-terminated */
	char resolved[TW_PATH_DEPTH][TW_NAME_LEN]; /* path components of the binary, leaf first */
	char args[TW_ARGS_LEN];
};

/*
 * One inbound connection or probe. Source is the remote peer, destination is
 * this host; ports in host byte order, addresses in network byte order
 * (IPv4 in the first four bytes).
 */
struct net_event {
	__u64 boot_ns;
	__u32 kind;      /* enum tw_net_kind */
	__u16 family;    /* AF_INET or AF_INET6 */
	__u16 sport;
	__u16 dport;
	__u16 pad;
	__u32 pad2;
	__u8 saddr[16];
	__u8 daddr[16];
};

/*
 * File tripwires (file.bpf.c). An opened or changed file matches when its
 * own inode, or that of a directory at most TW_FILE_DEPTH levels above it on
 * the same filesystem, is in file_watches with a kind that covers that
 * distance: 0 any kind, 1 a directory rule, further only a recursive one.
 * Deeper files are not seen (docs/capabilities.md).
 */
#define TW_FILE_DEPTH 16
#define TW_FILE_NAME_LEN 256 /* NAME_MAX + NUL */

/* file_watch.kind */
enum tw_watch_kind {
	TW_WATCH_FILE = 1,   /* a watched file (or a directory itself, no entries) */
	TW_WATCH_DIR = 2,    /* a directory and its direct entries */
	TW_WATCH_TREE = 3,   /* a directory and everything below it */
	TW_WATCH_PARENT = 4, /* the directory of a watched file: only creates and renames into it */
};

/* Value of file_watches, keyed by inode_key. */
struct file_watch {
	__u32 rule; /* index into the agent's rule list */
	__u32 kind; /* enum tw_watch_kind */
};

/* What was done to the file. */
enum tw_file_op {
	TW_FILE_ACCESS = 1, /* opened for reading (or executed, or listed) */
	TW_FILE_MODIFY = 2, /* opened for writing, or truncated */
	TW_FILE_ATTRIB = 3, /* mode, owner or times changed */
	TW_FILE_CREATE = 4,
	TW_FILE_DELETE = 5,
	TW_FILE_RENAME = 6,
};

/* file_event.flags */
enum tw_file_flag {
	TW_FILE_AGGREGATED = 1, /* repeats are counted in file_trips under this record's key */
	TW_FILE_TO_ROOT = 2,    /* to_names reached the filesystem root */
	TW_FILE_DIR = 4,        /* the file is a directory */
	TW_FILE_INTO = 8,       /* a rename matched on its new name: names is the new path, to_names the old */
};

/*
 * Key of file_trips: identical trips (same file, rule, operation and
 * process) within the agent's lifetime share one counter, so a read flood
 * costs a map update per open and one ring-buffer record in all.
 * start_ns (the task's start_boottime, as /proc/PID/stat shows it in clock
 * ticks) tells a reused PID from its first owner, exec_id an exec'd program
 * from the one before.
 */
struct file_trip_key {
	__u64 dev;
	__u64 ino;
	__u64 start_ns;
	__u64 exec_id; /* the task's self_exec_id: a process that execs is another actor */
	__u32 tgid;
	__u32 rule;
	__u32 op;
	__u32 pad;
};

/* file_trip_count.record */
enum tw_record_state {
	TW_RECORD_PENDING = 0, /* the program is still writing the record */
	TW_RECORD_SENT = 1,    /* the record is on the ring buffer */
	TW_RECORD_LOST = 2,    /* the ring buffer was full: the count stands, the actor is unknown */
};

/* Value of file_trips. count only grows; the agent reports differences. */
struct file_trip_count {
	__u64 count;
	__u64 last_ns; /* bpf_ktime_get_boot_ns() of the latest trip */
	__u32 record;  /* enum tw_record_state */
	__u32 pad;
};

/*
 * One file trip: this header, then its variable part packed behind it, in
 * this order: depth names (TW_FILE_NAME_LEN bytes each, leaf first: the path
 * below the anchor, the watched inode that matched), to_depth names (a
 * rename's other side, walked up to its filesystem root or TW_FILE_DEPTH
 * levels), exe_n slots of the executable's path (TW_NAME_LEN bytes each,
 * leaf first) and args_len bytes of argv. Only what is used travels on the
 * ring buffer: a typical record is well under 1 KB, where a fixed layout
 * took ~14 KB and the ring held ~37 of them.
 */
struct file_event {
	__u64 boot_ns;
	__u64 cgroup_id;
	struct file_trip_key key;
	__u64 anchor_dev;
	__u64 anchor_ino;
	__u64 to_dev;
	__u32 pid;   /* the thread */
	__u32 ppid;  /* the parent process's tgid */
	__u32 uid;
	__u32 gid;
	__u32 kind;  /* enum tw_watch_kind of the anchor */
	__u32 flags;      /* enum tw_file_flag */
	__u32 task_flags; /* enum tw_exec_flag: args and exe cut or unread */
	__u32 depth;      /* names used */
	__u32 to_depth;
	__u32 args_len;
	__u32 exe_n;
	__u32 pad;
	char comm[TW_COMM_LEN];
};

/* The most a file_event's variable part can take. */
#define TW_FILE_DATA_LEN (2 * TW_FILE_DEPTH * TW_FILE_NAME_LEN + TW_PATH_DEPTH * TW_NAME_LEN + TW_ARGS_LEN)

#endif /* TRIPWIRE_H */
