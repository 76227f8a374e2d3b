package plugin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"unicode/utf8"
)

// genesisHash is the prev_hash of a chain's first entry.
const genesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// canonicalFromJSON rebuilds the exact bytes internal/event.Canonical produced
// for an event from any JSON rendering of it, such as a jsonb payload read
// back from PostgreSQL (which reorders keys and re-spaces). The encoding is
// compact JSON with keys in byte order, integers in decimal, booleans, and
// strings escaped only for '"', '\\' and bytes below 0x20 (as lowercase
// \u00XX). It cannot import internal/event: this plugin is its own module, so
// the rules are repeated here and pinned by golden files produced by
// internal/event (testdata/canonical_golden.json).
func canonicalFromJSON(src []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding payload: %w", err)
	}
	if m == nil {
		return nil, errors.New("decoding payload: not an object")
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst := make([]byte, 0, len(src))
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendCanonicalString(dst, k)
		dst = append(dst, ':')
		switch v := m[k].(type) {
		case string:
			dst = appendCanonicalString(dst, v)
		case json.Number:
			// Canonical numbers are int64 in decimal; anything else (a
			// fraction, an exponent) cannot have come from the agent.
			n, err := v.Int64()
			if err != nil {
				return nil, fmt.Errorf("payload key %q: %q is not an int64", k, v)
			}
			dst = fmt.Appendf(dst, "%d", n)
		case bool:
			if v {
				dst = append(dst, "true"...)
			} else {
				dst = append(dst, "false"...)
			}
		default:
			return nil, fmt.Errorf("payload key %q: unsupported value type %T", k, v)
		}
	}
	return append(dst, '}'), nil
}

const hexDigits = "0123456789abcdef"

func appendCanonicalString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// chainHash is hex(SHA-256(prevHash ‖ canonical)), as the agent computes it.
func chainHash(prevHash string, canonical []byte) string {
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write(canonical)
	return hex.EncodeToString(h.Sum(nil))
}
