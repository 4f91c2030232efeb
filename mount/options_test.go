package mount

import (
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// TestExportedParseOptions covers what runtime/rootfs relies on: flags are
// applied in order, each propagation name is kept as its own entry, and
// everything else comes back untouched and in order.
func TestExportedParseOptions(t *testing.T) {
	tests := []struct {
		opts []string
		want Options
	}{
		{[]string{"rbind", "ro", "rslave", "private"}, Options{
			Flags:       unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY,
			Propagation: []uintptr{unix.MS_SLAVE | unix.MS_REC, unix.MS_PRIVATE},
		}},
		{[]string{"nosymfollow", "lazytime", "nolazytime", "size=1m", "rro", "mode=755"}, Options{
			Flags: unix.MS_NOSYMFOLLOW,
			Rest:  []string{"size=1m", "rro", "mode=755"},
		}},
		{nil, Options{}},
	}
	for _, tt := range tests {
		if got := ParseOptions(tt.opts); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %+v, want %+v", tt.opts, got, tt.want)
		}
	}
}
