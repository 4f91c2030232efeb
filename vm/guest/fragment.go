package guest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
)

// ErrBadFragment wraps errdefs.ErrInvalidArgument for a malformed fragment.
var ErrBadFragment = fmt.Errorf("kernel config fragment: %w", errdefs.ErrInvalidArgument)

// ErrOptionDropped is returned when an option of the fragment is not in the
// final .config: Kconfig dropped it, usually because a dependency is off.
var ErrOptionDropped = fmt.Errorf("kernel config option dropped: %w", errdefs.ErrFailedPrecondition)

// Option is one line of a config fragment.
type Option struct {
	Name  string // CONFIG_FOO
	Value string // "y", "m", "100", "\"-hull\""; "n" for "# CONFIG_FOO is not set"
	Line  int    // line number in the fragment
}

// String returns the option as it appears in a .config.
func (o Option) String() string {
	if o.Value == "n" {
		return "# " + o.Name + " is not set"
	}
	return o.Name + "=" + o.Value
}

var (
	setRe    = regexp.MustCompile(`^(CONFIG_[A-Za-z0-9_]+)=(.+)$`)
	notSetRe = regexp.MustCompile(`^# (CONFIG_[A-Za-z0-9_]+) is not set$`)
)

// ParseFragment reads a Kconfig fragment: `CONFIG_X=value` lines and
// `# CONFIG_X is not set` lines; other comments and blank lines are
// skipped. An option given twice, or any other line, is an error naming it.
func ParseFragment(r io.Reader) ([]Option, error) {
	var opts []Option
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		var o Option
		switch {
		case notSetRe.MatchString(line):
			o = Option{Name: notSetRe.FindStringSubmatch(line)[1], Value: "n", Line: n}
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case setRe.MatchString(line):
			m := setRe.FindStringSubmatch(line)
			o = Option{Name: m[1], Value: m[2], Line: n}
		default:
			return nil, fmt.Errorf("%w: line %d: %q is not CONFIG_NAME=value", ErrBadFragment, n, line)
		}
		if prev, ok := seen[o.Name]; ok {
			return nil, fmt.Errorf("%w: line %d: %s already set on line %d", ErrBadFragment, n, o.Name, prev)
		}
		seen[o.Name] = n
		opts = append(opts, o)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(opts) == 0 {
		return nil, fmt.Errorf("%w: no options", ErrBadFragment)
	}
	return opts, nil
}

// VerifyConfig checks that every option of the fragment has its value in
// config (the final .config). Every missing option is named in the error,
// which wraps ErrOptionDropped.
func VerifyConfig(fragment []Option, config []byte) error {
	have := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(config))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := setRe.FindStringSubmatch(line); m != nil {
			have[m[1]] = m[2]
		}
	}
	var dropped []string
	for _, o := range fragment {
		got, ok := have[o.Name]
		switch {
		case o.Value == "n" && (!ok || got == "n"):
		case o.Value != "n" && ok && got == o.Value:
		default:
			now := "not set"
			if ok {
				now = got
			}
			dropped = append(dropped, fmt.Sprintf("%s (fragment line %d; .config has %s)", o, o.Line, now))
		}
	}
	if len(dropped) > 0 {
		return fmt.Errorf("%w: %s", ErrOptionDropped, strings.Join(dropped, "; "))
	}
	return nil
}
