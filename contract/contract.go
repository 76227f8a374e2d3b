// Package contract is the one copy of every name and format that crosses a
// boundary between TripWire's programs: the agent, the collector's receiver
// and exporter, and the Grafana plugin, which is its own Go module. It has no
// dependencies, so both modules can require it (through a replace to this
// directory) without pulling each other's.
//
// Start with the constants below; [ChainHash] and [GenesisHash] define the
// audit chain's links, [NotifyChannel] and [Notification] the live feed. The
// root module reaches these names through internal/event, which re-exports
// them beside the event schema; the plugin imports this package directly.
package contract

// Loss reasons: tripwire.loss.reason of a tripwire.agent.loss event, and the
// reason label of the agent's loss metric. Every reason the agent sends is
// here and in [LossReasons].
const (
	// LossSpoolShed: the spool was full and shed INFO/WARN events; the
	// event carries the shed seq range, so the collector can tell the gap
	// in the chain from tampering.
	LossSpoolShed = "spool_shed"
	// LossPipelineFull: a trip waited too long for the pipeline and was
	// dropped.
	LossPipelineFull = "pipeline_full"
	// LossInvalidEvent: a watcher produced an event that fails validation.
	LossInvalidEvent = "invalid_event"
	// LossKernelOverflow: the kernel's fanotify/inotify queue overflowed.
	LossKernelOverflow = "kernel_overflow"
	// LossRingbuf: the eBPF ring buffer was full and the kernel dropped
	// records.
	LossRingbuf = "ringbuf"
	// LossNetlinkOverflow: the proc connector's netlink socket overflowed.
	LossNetlinkOverflow = "netlink_overflow"
	// LossExecBacklog: more execs waited for inspection than the watcher
	// holds.
	LossExecBacklog = "exec_backlog"
	// LossWatcherStopped: a watcher stopped with events still unread.
	LossWatcherStopped = "watcher_stopped"
	// LossListenOverflow: a honeyport's accept queue was full and the
	// kernel dropped handshakes. A client may retry and be accepted later,
	// so it is an upper bound of the connections missed.
	LossListenOverflow = "listen_overflow"
	// LossReceiveOverflow: a UDP honeyport's receive buffer was full and
	// the kernel dropped datagrams.
	LossReceiveOverflow = "receive_overflow"
)

// LossReasons lists every loss reason, in the order documented.
func LossReasons() []string {
	return []string{LossSpoolShed, LossPipelineFull, LossInvalidEvent, LossKernelOverflow,
		LossRingbuf, LossNetlinkOverflow, LossExecBacklog, LossWatcherStopped, LossListenOverflow, LossReceiveOverflow}
}

// Agent statuses: tripwire.agent.status of heartbeats and starts, and
// hosts.status. OFFLINE is never sent: the collector and the plugin derive
// it from silence. RETIRED is set by an Admin (the host was decommissioned):
// it raises no offline alert, and a new certificate for the name re-activates
// the host.
const (
	StatusOnline   = "ONLINE"
	StatusDegraded = "DEGRADED"
	StatusOffline  = "OFFLINE"
	StatusRetired  = "RETIRED"
)

// Resource attribute keys the agent sets; the receiver overwrites the host
// identity ones from the client certificate.
const (
	ResourceHostName       = "host.name"
	ResourceHostID         = "host.id"
	ResourceOSType         = "os.type"
	ResourceHostArch       = "host.arch"
	ResourceServiceName    = "service.name"
	ResourceServiceVersion = "service.version"

	// ServiceName is the service.name of every agent.
	ServiceName = "tripwire-agent"
)

// Attributes the tripwire receiver sets from the connection, overwriting
// whatever the agent sent: the peer's address on every log record (it
// describes the request, not the host), and its client certificate's expiry
// (RFC 3339) on the resource. Both are OpenTelemetry semantic conventions.
const (
	ClientAddress      = "client.address"
	ClientCertNotAfter = "tls.client.not_after"
)

// ClientCertSerial is the client certificate's serial number (lowercase
// hex), which the tripwire receiver sets on the resource beside
// [ClientCertNotAfter]. A retired host is re-activated by a record under
// another serial: a new certificate was issued for the name.
const ClientCertSerial = "tripwire.client.cert_serial"

// A refused identity: the tripwire receiver refused a request because of
// who sent it (its certificate names another host than the records claim,
// or was revoked or expired since the connection opened). The receiver hands
// the refusal on as one log record named IdentityRefused whose resource
// carries RefusalSource. The receiver rebuilds every agent's resource from
// an allowlist without that key, and refuses records with attributes
// outside the event schema, so only the receiver itself can produce one.
const (
	IdentityRefused = "tripwire.collector.identity_refused"
	// RefusalSource marks the resource of the receiver's refusal record;
	// its value is IdentityRefused.
	RefusalSource = "tripwire.collector.refusal"
	// Record attributes of a refusal, beside ClientAddress,
	// ClientCertNotAfter and ClientCertSerial.
	RefusedCertName    = "tripwire.refused.cert_name"    // the certificate's CN
	RefusedClaimedName = "tripwire.refused.claimed_name" // the host.name the records claimed, if that was the refusal
	RefusedReason      = "tripwire.refused.reason"       // the receiver's reason label (host_mismatch, revoked, expired)
	RefusedDetail      = "tripwire.refused.detail"       // the refusal's message
	RefusedCount       = "tripwire.refused.count"        // refusals since the receiver last recorded this one
)
