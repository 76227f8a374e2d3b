package contract

// Rule set scopes: rule_set_versions.scope, shared by the collector's OpAMP
// server, which computes each host's effective rules, and the Grafana
// plugin, which edits the sets. A global set applies to every host, a group
// set to the hosts whose attributes include every key and value of its
// selector, a host set to the host whose certificate CN is its host name.
const (
	RuleScopeGlobal = "global"
	RuleScopeGroup  = "group"
	RuleScopeHost   = "host"
)

// RuleSetsChannel is the PostgreSQL channel every save of a rule set
// NOTIFYs, with the set's id as the payload, so that the collectors push the
// change to the agents at once.
const RuleSetsChannel = "tripwire_rule_sets"

// RemoteRulesKey names the central rule set in the OpAMP remote config the
// collector offers an agent (a rules: YAML document); its config hash is
// SHA-256 of that body, which the agent reports back as applied or refused.
const RemoteRulesKey = "rules.yaml"

// Rule set states an agent reports over OpAMP, agent_management.rule_status.
const (
	RuleStatusApplied  = "APPLIED"
	RuleStatusApplying = "APPLYING"
	RuleStatusFailed   = "FAILED"
)
