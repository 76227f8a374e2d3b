/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * task.h: what every TripWire program reads about the task that acted and
 * the files it touched, shared so exec and file trips carry the same fields
 * read the same way.
 */
#ifndef TW_LIB_TASK_H
#define TW_LIB_TASK_H

/*
 * tw_resolve_path writes the components of f's path, leaf first, into
 * slots, walking dentries up to the mount root and crossing into parent
 * mounts (what d_path does, which tracing programs may not call), and
 * returns the slots it used. It ors TW_EXEC_RESOLVED_CUT into *flags for a
 * component longer than TW_NAME_LEN - 1 and TW_EXEC_RESOLVED_PARTIAL when
 * the root was not reached within TW_PATH_DEPTH.
 */
static __always_inline __u32 tw_resolve_path(char slots[TW_PATH_DEPTH][TW_NAME_LEN], __u32 *flags, struct file *f)
{
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	struct vfsmount *vmnt = BPF_CORE_READ(f, f_path.mnt);
	/* container_of with a CO-RE offset: struct mount differs across kernels. */
	struct mount *mnt = (void *)vmnt - bpf_core_field_offset(struct mount, mnt);
	int i;

	for (i = 0; i < TW_PATH_DEPTH; i++) {
		struct dentry *mnt_root = BPF_CORE_READ(vmnt, mnt_root);
		struct dentry *parent = BPF_CORE_READ(d, d_parent);

		slots[i][0] = 0;
		if (d == mnt_root) {
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
			if (up == mnt)
				return i; /* the root of the mount namespace */
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			vmnt = &up->mnt;
			continue;
		}
		if (d == parent)
			return i; /* a filesystem root that is no mount root: a detached tree */
		long n = bpf_probe_read_kernel_str(slots[i], TW_NAME_LEN, BPF_CORE_READ(d, d_name.name));
		if (n == TW_NAME_LEN)
			*flags |= TW_EXEC_RESOLVED_CUT;
		d = parent;
	}
	*flags |= TW_EXEC_RESOLVED_PARTIAL;
	return TW_PATH_DEPTH;
}

/*
 * tw_read_args copies the task's argv (NUL-separated, as /proc/PID/cmdline
 * shows it) from its mm into args and returns the bytes copied. argv sits on
 * the user stack the kernel wrote at exec, so its pages are resident and a
 * non-faulting read succeeds while the process lives. It ors
 * TW_EXEC_ARGS_TRUNCATED into *flags when argv is longer than TW_ARGS_LEN and
 * TW_EXEC_ARGS_UNREAD when it cannot be read (a kernel thread, an exiting
 * task).
 */
static __always_inline __u32 tw_read_args(char args[TW_ARGS_LEN], __u32 *flags, struct task_struct *task)
{
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	if (!mm) {
		*flags |= TW_EXEC_ARGS_UNREAD;
		return 0;
	}
	__u64 start = BPF_CORE_READ(mm, arg_start);
	__u64 end = BPF_CORE_READ(mm, arg_end);
	__u64 len = end > start ? end - start : 0;
	if (len > TW_ARGS_LEN) {
		len = TW_ARGS_LEN;
		*flags |= TW_EXEC_ARGS_TRUNCATED;
	}
	if (len == 0)
		return 0;
	/* Re-bound for the verifier: clang may drop the check above. */
	__u32 rd = len;
	if (rd > TW_ARGS_LEN)
		rd = TW_ARGS_LEN;
	if (bpf_probe_read_user(args, rd, (void *)start) == 0)
		return rd;
	*flags |= TW_EXEC_ARGS_UNREAD;
	return 0;
}

#endif /* TW_LIB_TASK_H */
