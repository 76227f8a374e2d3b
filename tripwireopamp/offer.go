package tripwireopamp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/open-telemetry/opamp-go/protobufs"
	"go.yaml.in/yaml/v3"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/internal/rulestore"
)

// offer is the rule set a host should run: every enabled set that applies
// to it, in name order, as one rules: document.
type offer struct {
	body []byte
	hash []byte
	sets string // name@version, ...
}

// compose makes the offer of sets. A set whose rules are not a YAML list
// spoils the whole offer: an agent given the others alone would run a set
// nobody saved.
func compose(sets []rulestore.RuleSet) (offer, error) {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	names := make([]string, 0, len(sets))
	sort.Slice(sets, func(i, j int) bool { return sets[i].Name < sets[j].Name })
	for _, s := range sets {
		names = append(names, fmt.Sprintf("%s@%d", s.Name, s.Version))
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(s.Rules), &doc); err != nil {
			return offer{}, fmt.Errorf("rule set %s version %d: %w", s.Name, s.Version, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		if root.Kind != yaml.SequenceNode {
			return offer{}, fmt.Errorf("rule set %s version %d: not a list of rules", s.Name, s.Version)
		}
		seq.Content = append(seq.Content, root.Content...)
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "rules"}, seq},
		HeadComment: "central rule sets: " + strings.Join(names, ", ")}
	if len(names) == 0 {
		doc.HeadComment = "no central rule set applies to this host"
	}
	body, err := yaml.Marshal(doc)
	if err != nil {
		return offer{}, err
	}
	return offer{body: body, hash: hashOf(body), sets: strings.Join(names, ", ")}, nil
}

func (o offer) remoteConfig() *protobufs.AgentRemoteConfig {
	return &protobufs.AgentRemoteConfig{ConfigHash: o.hash, Config: &protobufs.AgentConfigMap{
		ConfigMap: map[string]*protobufs.AgentConfigFile{contract.RemoteRulesKey: {Body: o.body, ContentType: "text/yaml"}}}}
}

func hashOf(body []byte) []byte {
	h := sha256.Sum256(body)
	return h[:]
}

// report is what one AgentToServer message says; empty fields were not in
// it (an agent sends what changed).
type report struct {
	status        string // APPLIED, APPLYING, FAILED; "" not reported
	hash          []byte // the set status is about
	applyError    string
	effectiveHash string // hex; "" not reported
	health        *protobufs.ComponentHealth
}

var statusNames = map[protobufs.RemoteConfigStatuses]string{
	protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED:  contract.RuleStatusApplied,
	protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING: contract.RuleStatusApplying,
	protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED:   contract.RuleStatusFailed,
}

func reportOf(msg *protobufs.AgentToServer) report {
	var r report
	if st := msg.RemoteConfigStatus; st != nil {
		r.status, r.hash = statusNames[st.Status], st.LastRemoteConfigHash
		if r.status == contract.RuleStatusFailed {
			r.applyError = st.ErrorMessage
		}
	}
	if ec := msg.EffectiveConfig; ec != nil && ec.ConfigMap != nil {
		r.effectiveHash = effectiveHash(ec.ConfigMap.ConfigMap)
	}
	r.health = msg.Health
	return r
}

// effectiveHash is SHA-256 over the config map's files in name order.
func effectiveHash(m map[string]*protobufs.AgentConfigFile) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s", len(k), k)
		fmt.Fprintf(h, "%d:", len(m[k].GetBody()))
		h.Write(m[k].GetBody())
	}
	return hex.EncodeToString(h.Sum(nil))
}
