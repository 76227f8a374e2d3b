package health

import (
	"errors"
	"log/slog"
	"net"
	"os"
)

// listenSocket: Windows has no socket group; use a TCP address with a token.
func listenSocket(path, group string, log *slog.Logger) (net.Listener, error) {
	return nil, errors.New("health sockets are not supported on Windows; set health.socket: \"\" and an address with a token_file")
}

// privateToAgent: file modes do not apply; the token file's ACL does.
func privateToAgent(*os.File) error { return nil }
