package daemon_test

import (
	"os"
	"testing"

	"github.com/hullproject/hull/internal/hulltest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	hulltest.Cleanup()
	os.Exit(code)
}
