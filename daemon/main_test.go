package daemon_test

import (
	"os"
	"testing"

	"github.com/hullproject/hull/internal/hulltest"
	"github.com/hullproject/hull/vm/vmtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	hulltest.Cleanup()
	vmtest.Cleanup() // the agent initramfs the vm tests built
	os.Exit(code)
}
