package guest

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
)

// TestInitDmesgMarker starts and ends the kernel log that the test init
// copies to the console when the kernel command line holds "hull.dmesg"
// ("<marker> begin" ... "<marker> end"). Keep in sync with
// vm/guest/testinit.
const TestInitDmesgMarker = "HULL-DMESG"

// ErrNoBootLog wraps errdefs.ErrNotFound: the console holds no kernel log
// copied by the test init.
var ErrNoBootLog = fmt.Errorf("no %s kernel log on the console (boot the test init with hull.dmesg): %w", TestInitDmesgMarker, errdefs.ErrNotFound)

// Initcall is one initcall's run time, from a kernel booted with
// initcall_debug.
type Initcall struct {
	Name     string // "acpi_init", without the +offset/size suffix
	Duration time.Duration
}

// BootLog is what a kernel log (as the test init copies it for
// "hull.dmesg") tells about where the kernel's boot went. With
// "initcall_debug" the kernel records each initcall's duration at debug
// level: in the buffer, not on the slow emulated console, so the figures
// are those of a quiet boot (recording them costs some time of its own).
// Initcalls that run before the switch to the TSC clocksource (the
// fs_initcall clocksource_done_booting) are timed with jiffies: 0 or
// multiples of 10 ms at HZ=100. An initcall that sleeps (a kthread start)
// also counts the time the asynchronous initramfs unpacking ran meanwhile.
type BootLog struct {
	// Initcalls in the order they ran.
	Initcalls []Initcall
	// Marks are the printk times of the boot's milestones that appeared,
	// by BootLogMarks key.
	Marks map[string]time.Duration
}

// BootLogMarks are the kernel log lines whose first printk time
// BootLog.Marks records: the boot's phases.
var BootLogMarks = []string{
	"Kernel command line",
	"Memory:",
	"smpboot: Total of",
	"devtmpfs: initialized",
	"Unpacking initramfs",
	"Freeing initrd memory",
	"Freeing unused kernel image (initmem)",
	"Run /init as init process",
}

var (
	printkLine  = regexp.MustCompile(`^(?:<\d+>)?\[\s*(\d+\.\d+)\]\s?(.*)$`)
	initcallRet = regexp.MustCompile(`^initcall ([^+ ]+)\S* returned -?\d+ after (\d+) usecs`)
)

// ParseBootLog reads the kernel log the test init copied to console.
func ParseBootLog(console []byte) (*BootLog, error) {
	// The serial console's tty turns "\n" into "\r\n".
	begin := []byte(TestInitDmesgMarker + " begin")
	i := bytes.Index(console, begin)
	if i < 0 {
		return nil, ErrNoBootLog
	}
	log := console[i+len(begin):]
	if j := bytes.IndexByte(log, '\n'); j >= 0 {
		log = log[j+1:]
	}
	if j := bytes.Index(log, []byte(TestInitDmesgMarker+" end")); j >= 0 {
		log = log[:j]
	}
	bl := &BootLog{Marks: map[string]time.Duration{}}
	for _, line := range bytes.Split(log, []byte{'\n'}) {
		m := printkLine.FindSubmatch(bytes.TrimRight(line, "\r"))
		if m == nil {
			continue
		}
		sec, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			continue
		}
		at, msg := time.Duration(sec*float64(time.Second)), m[2]
		if c := initcallRet.FindSubmatch(msg); c != nil {
			us, _ := strconv.ParseInt(string(c[2]), 10, 64)
			bl.Initcalls = append(bl.Initcalls, Initcall{Name: string(c[1]), Duration: time.Duration(us) * time.Microsecond})
			continue
		}
		for _, k := range BootLogMarks {
			if _, seen := bl.Marks[k]; !seen && bytes.HasPrefix(msg, []byte(k)) {
				bl.Marks[k] = at
			}
		}
	}
	return bl, nil
}

// Slowest returns the n longest initcalls, longest first.
func (bl *BootLog) Slowest(n int) []Initcall {
	s := append([]Initcall(nil), bl.Initcalls...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].Duration > s[j].Duration })
	if len(s) > n {
		s = s[:n]
	}
	return s
}
