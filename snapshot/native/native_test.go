package native_test

import (
	"testing"

	"github.com/hullproject/hull/snapshot"
	"github.com/hullproject/hull/snapshot/native"
	"github.com/hullproject/hull/snapshot/testsuite"
)

func TestNative(t *testing.T) {
	testsuite.Run(t, func(t *testing.T, root string) snapshot.Snapshotter {
		s, err := native.New(root)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestNativeReopen(t *testing.T) {
	testsuite.CheckReopen(t, t.TempDir(), func(t *testing.T, root string) snapshot.Snapshotter {
		s, err := native.New(root)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
