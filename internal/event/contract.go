package event

import "github.com/tripwire-sec/tripwire/contract"

// The names below cross module boundaries: the Grafana plugin, its own Go
// module, reads them too. Their one copy is the dependency-free contract
// module; the root module uses them from here, beside the event schema.

// Resource attribute keys set by the agent; the receiver overwrites the host
// identity ones from the client certificate.
const (
	ResourceHostName       = contract.ResourceHostName
	ResourceHostID         = contract.ResourceHostID
	ResourceOSType         = contract.ResourceOSType
	ResourceHostArch       = contract.ResourceHostArch
	ResourceServiceName    = contract.ResourceServiceName
	ResourceServiceVersion = contract.ResourceServiceVersion

	// ServiceName is the service.name of every agent.
	ServiceName = contract.ServiceName
)

// Attributes the tripwire receiver sets from the connection: the peer's
// address on each record, its certificate's expiry on the resource.
const (
	KeyClientAddress           = contract.ClientAddress
	ResourceClientCertNotAfter = contract.ClientCertNotAfter
)

// Loss reasons (tripwire.loss.reason); see contract for what each means.
const (
	LossSpoolShed       = contract.LossSpoolShed
	LossPipelineFull    = contract.LossPipelineFull
	LossInvalidEvent    = contract.LossInvalidEvent
	LossKernelOverflow  = contract.LossKernelOverflow
	LossRingbuf         = contract.LossRingbuf
	LossNetlinkOverflow = contract.LossNetlinkOverflow
	LossExecBacklog     = contract.LossExecBacklog
	LossWatcherStopped  = contract.LossWatcherStopped
	LossListenOverflow  = contract.LossListenOverflow
	LossReceiveOverflow = contract.LossReceiveOverflow
)

// Agent statuses (tripwire.agent.status, hosts.status).
const (
	StatusOnline   = contract.StatusOnline
	StatusDegraded = contract.StatusDegraded
	StatusOffline  = contract.StatusOffline
	StatusRetired  = contract.StatusRetired
)

// BreakKind names a break in an audit chain (tripwire.audit.break.kind).
type BreakKind = contract.BreakKind

// Chain-break kinds; see contract for what each means.
const (
	BreakMismatch     = contract.BreakMismatch
	BreakLink         = contract.BreakLink
	BreakGap          = contract.BreakGap
	BreakAccountedGap = contract.BreakAccountedGap
	BreakFork         = contract.BreakFork
	BreakReordered    = contract.BreakReordered
	BreakTruncated    = contract.BreakTruncated
	BreakMalformed    = contract.BreakMalformed
	BreakHead         = contract.BreakHead
)

// GenesisHash is the prev_hash of the first entry of every audit chain.
const GenesisHash = contract.GenesisHash

// ChainHash is the audit chain's link: hex(SHA-256(prevHash ‖ canonical)).
func ChainHash(prevHash string, canonical []byte) string {
	return contract.ChainHash(prevHash, canonical)
}

// NotifyChannel is the PostgreSQL channel of the live feed.
const NotifyChannel = contract.NotifyChannel

// Notification is one new alert in a NOTIFY payload, which is always a JSON
// array of them.
type Notification = contract.Notification

// NotifyTimeLayout formats a Notification's times.
const NotifyTimeLayout = contract.NotifyTimeLayout

// ResourceClientCertSerial is the client certificate's serial, set by the
// receiver on the resource.
const ResourceClientCertSerial = contract.ClientCertSerial

// SearchWords are the words free text finds an alert by: the exporter
// stores them in alerts.search_words (see contract.SearchWords).
func SearchWords(summary, rule, host, commandLine, userName string) []string {
	return contract.SearchWords(contract.SearchText(summary, rule, host, commandLine, userName))
}
