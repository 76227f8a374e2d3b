package main

import (
	"context"
	"os"
	"os/signal"

	"golang.org/x/sys/windows/svc"
)

// serviceName is the name `sc create` registers the agent under.
const serviceName = "tripwire"

// stopContext ends when the Windows service manager asks the service to stop
// or the machine shuts down, or on Ctrl-C when run from a console. release
// reports the service stopped once the agent has drained.
func stopContext() (ctx context.Context, release func()) {
	inService, err := svc.IsWindowsService()
	if err != nil || !inService {
		return signal.NotifyContext(context.Background(), os.Interrupt)
	}
	ctx, cancel := context.WithCancel(context.Background())
	drained := make(chan struct{})
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		// svc.Run returns when Execute does; if it fails (not started by the
		// service manager after all) the agent stops rather than running
		// unmanaged.
		if err := svc.Run(serviceName, &service{stop: cancel, drained: drained}); err != nil {
			cancel()
		}
	}()
	return ctx, func() {
		cancel()
		close(drained)
		<-ran
	}
}

// service answers the service manager: running until Stop or Shutdown, then
// stop-pending until the agent has drained its queue into the spool.
type service struct {
	stop    context.CancelFunc
	drained chan struct{}
}

func (s *service) Execute(_ []string, requests <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case r := <-requests:
			switch r.Cmd {
			case svc.Interrogate:
				status <- r.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				s.stop()
				<-s.drained
				return false, 0
			}
		case <-s.drained:
			// The agent stopped by itself (an error): report it stopped.
			return false, 1
		}
	}
}
