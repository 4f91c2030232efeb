package seccomp

import (
	"encoding/json"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The commands of hull-runtime-helper (a program linked with libseccomp)
// that serve a hull-runtime built without it; see Cache.Compiler.
const (
	// HelperCompile reads a linux.seccomp profile (JSON) on stdin and
	// writes the compiled Program (JSON) on stdout.
	HelperCompile = "seccomp-compile"
	// HelperFeatures writes Features (JSON) on stdout.
	HelperFeatures = "seccomp-features"
)

// HelperMain runs the helper command args[0] (HelperCompile or
// HelperFeatures) and returns the exit code; ok is false when args names
// neither.
func HelperMain(args []string) (code int, ok bool) {
	if len(args) != 1 {
		return 0, false
	}
	var out any
	switch args[0] {
	case HelperCompile:
		var s specs.LinuxSeccomp
		if err := json.NewDecoder(os.Stdin).Decode(&s); err != nil {
			fmt.Fprintf(os.Stderr, "read the seccomp profile: %v\n", err)
			return 1, true
		}
		p, err := Compile(&s)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1, true
		}
		out = p
	case HelperFeatures:
		out = Features()
	default:
		return 0, false
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1, true
	}
	return 0, true
}
