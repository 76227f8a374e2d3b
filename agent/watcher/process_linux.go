package watcher

import (
	"errors"
	"fmt"
)

// NewProcessWatcher returns a watcher for rules using the best mechanism that
// works here: eBPF on sched_process_exec, else fanotify FAN_OPEN_EXEC marks on
// the watched binaries, else the netlink proc connector, else polling /proc.
// opts.Mechanism ("ebpf", "fanotify_exec", "proc_connector", "poll") forces one. Falling back is
// logged at WARN with the reason; Mechanism and Missing say what is in use.
func NewProcessWatcher(rules []ProcessRule, opts Options) (Watcher, error) {
	rs, err := compileExecRules(rules)
	if err != nil {
		return nil, err
	}
	log := execNetLogger(opts)
	order := []string{procMechEBPF, procMechFanotify, procMechProcConn, procMechPoll}
	switch opts.Mechanism {
	case "":
	case procMechEBPF, procMechFanotify, procMechProcConn, procMechPoll:
		order = []string{opts.Mechanism}
	case "fanotify":
		order = []string{procMechFanotify}
	default:
		return nil, fmt.Errorf("process watcher: unknown mechanism %q (want ebpf, fanotify_exec, proc_connector or poll)", opts.Mechanism)
	}
	var errs []error
	for _, mech := range order {
		var w Watcher
		var err error
		switch mech {
		case procMechEBPF:
			w, err = newExecEBPF(rs, opts)
		case procMechFanotify:
			w, err = newExecFanotify(rs, opts)
		case procMechProcConn:
			w, err = newExecProcConn(rs, opts)
		case procMechPoll:
			w = newExecPoll(rs, newProcTable(opts), opts)
		}
		if err == nil {
			if len(errs) > 0 {
				log.Warn("process watcher fell back", "mechanism", mech,
					"missing", w.Missing(), "reason", errors.Join(errs...).Error())
			}
			return w, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", mech, err))
	}
	return nil, fmt.Errorf("process watcher: no mechanism works: %w", errors.Join(errs...))
}
