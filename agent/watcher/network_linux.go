package watcher

import (
	"errors"
	"fmt"
)

// newObserveWatcher picks the observe-mode mechanism: eBPF, else sock_diag.
func newObserveWatcher(targets []netTarget, opts Options) (Watcher, error) {
	log := execNetLogger(opts)
	order := []string{netMechEBPF, netMechSockdiag}
	switch opts.Mechanism {
	case "":
	case netMechEBPF, netMechSockdiag:
		order = []string{opts.Mechanism}
	default:
		return nil, fmt.Errorf("network watcher: unknown mechanism %q (want ebpf or sockdiag)", opts.Mechanism)
	}
	var errs []error
	for _, mech := range order {
		var w Watcher
		var err error
		switch mech {
		case netMechEBPF:
			w, err = newNetEBPF(targets, opts)
		case netMechSockdiag:
			w, err = newSockdiag(targets, opts)
		}
		if err == nil {
			if len(errs) > 0 {
				log.Warn("network watcher fell back", "mechanism", mech, "missing", w.Missing(),
					"reason", errors.Join(errs...).Error(),
					"consequence", "probes of closed ports (tripwire.network.scan) are not seen; connections shorter than the poll interval may be missed")
			}
			return w, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", mech, err))
	}
	return nil, fmt.Errorf("network watcher: no observe mechanism works: %w", errors.Join(errs...))
}
