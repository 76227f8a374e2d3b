package config

import (
	"testing"

	"github.com/tripwire-sec/tripwire/contract/rules"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// TestSeveritiesMatchEvent: the shared validator accepts exactly the
// severities the agent's events have.
func TestSeveritiesMatchEvent(t *testing.T) {
	for _, s := range rules.Severities {
		if _, err := event.ParseSeverity(s); err != nil {
			t.Errorf("rules accepts %q, events do not: %v", s, err)
		}
	}
	for sev := event.SeverityInfo; sev <= event.SeverityCritical; sev++ {
		if rules.Severities[sev-1] != sev.String() {
			t.Errorf("severity %d is %q for events, %q for rules", sev, sev.String(), rules.Severities[sev-1])
		}
	}
}
