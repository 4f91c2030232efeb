package rootfs

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		opts  []string
		flags uintptr
		prop  int
		set   uint64
		data  string
		err   bool
	}{
		{[]string{"nosuid", "noexec", "nodev"}, unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV, 0, 0, "", false},
		{[]string{"ro", "rw"}, 0, 0, 0, "", false},
		{[]string{"rbind", "ro", "rslave"}, unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY, 1, 0, "", false},
		{[]string{"size=1m", "mode=755", "nosuid"}, unix.MS_NOSUID, 0, 0, "size=1m,mode=755", false},
		{[]string{"bind", "rro"}, unix.MS_BIND, 0, unix.MOUNT_ATTR_RDONLY, "", false},
		{[]string{"idmap"}, 0, 0, 0, "", true},
	}
	for _, tt := range tests {
		p, err := parseOptions(tt.opts)
		if tt.err {
			if err == nil {
				t.Errorf("%v: no error", tt.opts)
			}
			continue
		}
		if err != nil || p.flags != tt.flags || len(p.propagation) != tt.prop || p.setAttr != tt.set || p.data != tt.data {
			t.Errorf("%v: got %+v %v", tt.opts, p, err)
		}
	}
}
