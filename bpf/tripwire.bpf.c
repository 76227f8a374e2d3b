//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TripWire's kernel side: exec tripwires (sched_process_exec) and inbound
 * connection tripwires (inet_sock_set_state, tcp_send_reset). Programs are
 * BTF-typed tracepoints (tp_btf): they need no kprobes and no tracefs.
 *
 * Everything is filtered here against maps the agent fills, so unwatched
 * execs and connections never reach user space.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "tripwire.h"
#include "lib/task.h"
#include "lib/stats.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define TCP_ESTABLISHED 1
#define TCP_SYN_RECV 3
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
#define IPPROTO_TCP 6

/* Watched executable names: comm as the kernel keeps it (15 bytes + NUL). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, char[TW_COMM_LEN]);
	__type(value, __u8);
} exec_names SEC(".maps");

/* Watched binaries by (dev, inode): symlinks and hard links resolve here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct inode_key);
	__type(value, __u8);
} exec_inodes SEC(".maps");

/*
 * Sizes of watched binaries: a byte-for-byte copy has another inode but the
 * same size; user space confirms by SHA-256.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} exec_sizes SEC(".maps");

/* Watched local ports, host byte order. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} net_ports SEC(".maps");

/* Only execs that match a rule are recorded. 512 KiB, about 80 records:
 * the agent maps a ring buffer twice over, so twice its size is resident in
 * it; a burst beyond this is counted as lost. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 19);
} exec_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} net_events SEC(".maps");

/* Keep the wire types in BTF so bpf2go generates them. */
const struct exec_event *unused_exec_event __attribute__((unused));
const struct net_event *unused_net_event __attribute__((unused));
const enum tw_stat *unused_tw_stat __attribute__((unused));
const enum tw_exec_match *unused_tw_exec_match __attribute__((unused));
const enum tw_exec_flag *unused_tw_exec_flag __attribute__((unused));
const enum tw_net_kind *unused_tw_net_kind __attribute__((unused));

SEC("tp_btf/sched_process_exec")
int BPF_PROG(tw_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	char comm[TW_COMM_LEN] = {};
	struct inode_key key = {};
	struct inode *inode;
	__u64 size;
	__u32 match = 0;

	stat_inc(TW_STAT_EXEC_SEEN);

	/* comm is already the new program's: begin_new_exec set it. */
	bpf_get_current_comm(comm, sizeof(comm));
	inode = BPF_CORE_READ(bprm, file, f_inode);
	key.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	key.ino = BPF_CORE_READ(inode, i_ino);
	size = BPF_CORE_READ(inode, i_size);

	if (bpf_map_lookup_elem(&exec_names, comm))
		match |= TW_MATCH_NAME;
	if (bpf_map_lookup_elem(&exec_inodes, &key))
		match |= TW_MATCH_INODE;
	if (bpf_map_lookup_elem(&exec_sizes, &size))
		match |= TW_MATCH_SIZE;
	if (!match)
		return 0;

	struct exec_event *e = bpf_ringbuf_reserve(&exec_events, sizeof(*e), 0);
	if (!e) {
		stat_inc(TW_STAT_EXEC_LOST);
		return 0;
	}

	e->boot_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->dev = key.dev;
	e->ino = key.ino;
	e->size = size;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = BPF_CORE_READ(task, cred, uid.val);
	e->euid = BPF_CORE_READ(task, cred, euid.val);
	e->match = match;
	e->flags = 0;
	e->argc = BPF_CORE_READ(bprm, argc);
	__builtin_memcpy(e->comm, comm, sizeof(comm));

	long n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	if (n < 0)
		e->filename[0] = 0;
	else if (n == sizeof(e->filename))
		e->flags |= TW_EXEC_PATH_TRUNCATED;

	e->resolved_n = tw_resolve_path(e->resolved, &e->flags, BPF_CORE_READ(bprm, file));
	e->pad = 0;

	e->args_len = tw_read_args(e->args, &e->flags, task);

	bpf_ringbuf_submit(e, 0);
	stat_inc(TW_STAT_EXEC_SENT);
	return 0;
}

static __always_inline void net_submit(__u32 kind, __u16 family, __u16 sport, __u16 dport,
				       const void *saddr, const void *daddr, __u32 alen)
{
	struct net_event *e = bpf_ringbuf_reserve(&net_events, sizeof(*e), 0);
	if (!e) {
		stat_inc(TW_STAT_NET_LOST);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->kind = kind;
	e->family = family;
	e->sport = sport;
	e->dport = dport;
	if (alen > 16)
		alen = 16;
	bpf_probe_read_kernel(e->saddr, alen, saddr);
	bpf_probe_read_kernel(e->daddr, alen, daddr);
	bpf_ringbuf_submit(e, 0);
	stat_inc(TW_STAT_NET_SENT);
}

/*
 * An inbound connection: the child socket goes SYN_RECV -> ESTABLISHED with
 * skc_num the local (listening) port. Outbound ones come from SYN_SENT.
 * The task running here is the client (loopback) or softirq: the owning
 * process is found in user space from the listener, never from current.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tw_sock_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (oldstate != TCP_SYN_RECV || newstate != TCP_ESTABLISHED)
		return 0;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;

	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!bpf_map_lookup_elem(&net_ports, &lport))
		return 0;

	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		net_submit(TW_NET_ACCEPT, family, rport, lport,
			   &sk->__sk_common.skc_daddr, &sk->__sk_common.skc_rcv_saddr, 4);
	} else if (family == AF_INET6) {
		net_submit(TW_NET_ACCEPT, family, rport, lport,
			   &sk->__sk_common.skc_v6_daddr, &sk->__sk_common.skc_v6_rcv_saddr, 16);
	}
	return 0;
}

/*
 * A probe: a SYN that found no socket is answered by a reset with sk == NULL;
 * the addresses come from the incoming segment.
 */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tw_tcp_reset, const struct sock *sk, const struct sk_buff *skb)
{
	unsigned char *head;
	__u16 th_off, nh_off, proto;
	__u8 th[20];

	if (sk || !skb)
		return 0;
	head = BPF_CORE_READ(skb, head);
	th_off = BPF_CORE_READ(skb, transport_header);
	nh_off = BPF_CORE_READ(skb, network_header);
	if (bpf_probe_read_kernel(th, sizeof(th), head + th_off))
		return 0;
	/* Only a bare SYN is a probe; a stray ACK or data is not. */
	if ((th[13] & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
		return 0;

	__u16 sport = ((__u16)th[0] << 8) | th[1];
	__u16 dport = ((__u16)th[2] << 8) | th[3];
	if (!bpf_map_lookup_elem(&net_ports, &dport))
		return 0;

	proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	if (proto == ETH_P_IP) {
		/* iphdr: saddr at 12, daddr at 16 */
		net_submit(TW_NET_PROBE, AF_INET, sport, dport, head + nh_off + 12, head + nh_off + 16, 4);
	} else if (proto == ETH_P_IPV6) {
		/* ipv6hdr: saddr at 8, daddr at 24 */
		net_submit(TW_NET_PROBE, AF_INET6, sport, dport, head + nh_off + 8, head + nh_off + 24, 16);
	}
	return 0;
}
