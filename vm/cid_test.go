package vm

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAllocateCIDLogic(t *testing.T) {
	taken := func(cids ...uint64) func(uint64) error {
		m := map[uint64]bool{}
		for _, c := range cids {
			m[c] = true
		}
		return func(c uint64) error {
			if c < firstGuestCID || c > lastGuestCID {
				t.Errorf("tried reserved CID %d", c)
			}
			if m[c] {
				return unix.EADDRINUSE
			}
			return nil
		}
	}
	for _, tc := range []struct {
		name    string
		start   uint32
		tries   int
		set     func(uint64) error
		want    uint32
		wantErr error
	}{
		{"free start", 100, 10, taken(), 100, nil},
		{"skips taken", 100, 10, taken(100, 101), 102, nil},
		{"reserved start moves to 3", 1, 10, taken(), 3, nil},
		{"wraps past the last CID", lastGuestCID, 10, taken(lastGuestCID), firstGuestCID, nil},
		{"all taken", 50, 3, taken(50, 51, 52), 0, ErrNoCID},
		{"other errors stop", 7, 10, func(uint64) error { return unix.EPERM }, 0, unix.EPERM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := allocateCID(tc.start, tc.tries, tc.set)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("allocateCID = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// TestAllocateCIDDevice claims a CID on the real device, and two claims
// get different CIDs.
func TestAllocateCIDDevice(t *testing.T) {
	if _, err := os.Stat(VhostVsockDevice); err != nil {
		t.Skipf("no %s on this host (vhost_vsock not loaded or not built): %v", VhostVsockDevice, err)
	}
	a, err := AllocateCID(VhostVsockDevice)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := AllocateCID(VhostVsockDevice)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.CID == b.CID || a.CID < firstGuestCID || b.CID < firstGuestCID {
		t.Fatalf("CIDs %d and %d", a.CID, b.CID)
	}
}

func TestAllocateCIDMissingDevice(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "vhost-vsock")
	if _, err := AllocateCID(dev); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

func TestSelectTransport(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "vhost-vsock")
	tr, reason := SelectTransport(missing)
	if tr != TransportSerial || reason != missing+" does not exist (load vhost_vsock for vsock)" {
		t.Errorf("missing device: %s, %q", tr, reason)
	}
	// A device node that exists but cannot open (no driver behind 10:241
	// here; a directory stands in where mknod is not allowed).
	unopenable := filepath.Join(dir, "dir")
	os.Mkdir(unopenable, 0o755)
	tr, reason = SelectTransport(unopenable)
	if tr != TransportSerial || reason == "" {
		t.Errorf("unopenable device: %s, %q", tr, reason)
	}
	present := filepath.Join(dir, "present")
	os.WriteFile(present, nil, 0o600)
	if tr, _ := SelectTransport(present); tr != TransportVsock {
		t.Errorf("openable device: %s, want vsock", tr)
	}
	// This host, as it is.
	tr, reason = SelectTransport(VhostVsockDevice)
	t.Logf("this host: %s (%s)", tr, reason)
	if _, err := os.Stat(VhostVsockDevice); err != nil && tr != TransportSerial {
		t.Errorf("no %s but transport %s", VhostVsockDevice, tr)
	}
}
