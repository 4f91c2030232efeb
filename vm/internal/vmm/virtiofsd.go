package vmm

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hullproject/hull/vm"
)

// DefaultVirtiofsd is QEMU's virtiofsd as Debian installs it.
const DefaultVirtiofsd = "/usr/lib/qemu/virtiofsd"

// StartVirtiofsd starts a virtiofsd serving s on the vhost-user socket
// sock and waits (up to 5 s) until the socket is there: the VMM connects
// to it when the VM is created. The share's binds are mounted in a mount
// namespace of virtiofsd's own, so the host's mount table never holds
// them and they vanish with it.
func StartVirtiofsd(ctx context.Context, bin string, s vm.Share, sock string) (*Process, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("virtiofsd %s: %w", bin, vm.ErrHypervisorMissing)
	}
	cache := s.Cache
	if cache == "" {
		cache = "always"
	}
	_ = os.Remove(sock)
	spec := Spec{Path: bin, Args: []string{"--socket-path=" + sock,
		"-o", "source=" + s.Source, "-o", "cache=" + cache, "-o", "log_level=warn"}}
	if len(s.Binds) > 0 {
		spec.BindsOf = &s
	}
	p, err := Start(spec)
	if err != nil {
		return nil, fmt.Errorf("virtiofsd for %q: %w", s.Tag, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := WaitForSocket(wctx, p, sock, fmt.Sprintf("virtiofsd for %q (%s)", s.Tag, s.Source)); err != nil {
		p.Kill()
		p.waitGroupGone()
		return nil, err
	}
	return p, nil
}
