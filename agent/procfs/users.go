package procfs

import (
	"os/user"
	"sync"
	"time"
)

// User names come from os/user, which without cgo reads /etc/passwd: a file
// read per lookup, so names are cached. Entries expire so a renamed or newly
// created user shows up, and the cache is bounded so a stream of unknown uids
// cannot grow it.
const (
	userCacheSize = 512
	userCacheTTL  = 5 * time.Minute
)

type cachedName struct {
	name string
	at   time.Time
}

var users = struct {
	sync.Mutex
	m map[string]cachedName
}{m: map[string]cachedName{}}

// UserName returns the name of a numeric uid, or "" when it has none.
func UserName(uid string) string {
	now := time.Now()
	users.Lock()
	c, ok := users.m[uid]
	users.Unlock()
	if ok && now.Sub(c.at) < userCacheTTL {
		return c.name
	}
	var name string
	if u, err := user.LookupId(uid); err == nil {
		name = u.Username
	}
	users.Lock()
	if len(users.m) >= userCacheSize {
		clear(users.m)
	}
	users.m[uid] = cachedName{name: name, at: now}
	users.Unlock()
	return name
}
