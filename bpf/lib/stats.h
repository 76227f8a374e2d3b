/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * stats.h: the counters every TripWire object keeps (enum tw_stat), one
 * map per object, per CPU so increments need no atomics. The agent sums
 * them for /metrics and for its loss reports.
 */
#ifndef TW_LIB_STATS_H
#define TW_LIB_STATS_H

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TW_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1;
}

#endif /* TW_LIB_STATS_H */
