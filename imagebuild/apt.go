package imagebuild

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// pkgInfo is apt-cache's record of one package version.
type pkgInfo struct {
	Name, Version, Arch string
	Filename, SHA256    string
	// Depends are the first alternatives of Depends and Pre-Depends.
	Depends []string
}

func (p *pkgInfo) String() string { return p.Name + "=" + p.Version }

// apt fetches and unpacks Debian packages through the host's apt.
type apt struct {
	cache string // .deb files, named as in the archive
	log   *slog.Logger
}

func runTool(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	if _, err := exec.LookPath(name); err != nil {
		return nil, fmt.Errorf("%s: %v (imagebuild needs Debian's apt and dpkg): %w", name, err, ErrTool)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.Bytes(), &toolError{cmd: name + " " + strings.Join(args, " "), msg: msg, err: err}
	}
	return stdout.Bytes(), nil
}

type toolError struct {
	cmd, msg string
	err      error
}

func (e *toolError) Error() string {
	if e.msg == "" {
		return fmt.Sprintf("%s: %v", e.cmd, e.err)
	}
	return fmt.Sprintf("%s: %v: %s", e.cmd, e.err, e.msg)
}

func (e *toolError) Unwrap() []error { return []error{e.err, ErrTool} }

// show returns the record of spec ("name" for the candidate version, or
// "name=version").
func (a *apt) show(ctx context.Context, spec string) (*pkgInfo, error) {
	args := []string{"show", "--no-all-versions", spec}
	out, err := runTool(ctx, "", "apt-cache", args...)
	recs := parseRecords(out)
	if err != nil || len(recs) == 0 {
		why := "apt-cache has no record of it"
		if te, ok := err.(*toolError); ok && te.msg != "" {
			why = te.msg
		} else if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("package %q: %s (is the name right, and has `apt-get update` run?): %w", spec, oneLine(why), ErrUnknownPackage)
	}
	r := recs[0]
	p := &pkgInfo{Name: r["Package"], Version: r["Version"], Arch: r["Architecture"], Filename: r["Filename"], SHA256: r["SHA256"]}
	if p.Name == "" || p.Version == "" || p.Filename == "" {
		return nil, fmt.Errorf("package %q: apt-cache record without Package, Version or Filename: %w", spec, ErrUnknownPackage)
	}
	p.Depends = append(parseDepends(r["Pre-Depends"]), parseDepends(r["Depends"])...)
	return p, nil
}

// showAll is show for many packages in one apt-cache run. It returns the
// records it got by package name; when any spec is unknown it returns
// nothing, and show (one at a time) says which.
func (a *apt) showAll(ctx context.Context, specs []string) map[string]*pkgInfo {
	out := map[string]*pkgInfo{}
	if len(specs) == 0 {
		return out
	}
	data, err := runTool(ctx, "", "apt-cache", append([]string{"show", "--no-all-versions"}, specs...)...)
	if err != nil {
		return out
	}
	for _, r := range parseRecords(data) {
		p := &pkgInfo{Name: r["Package"], Version: r["Version"], Arch: r["Architecture"], Filename: r["Filename"], SHA256: r["SHA256"]}
		if p.Name == "" || p.Version == "" || p.Filename == "" || out[p.Name] != nil {
			continue
		}
		p.Depends = append(parseDepends(r["Pre-Depends"]), parseDepends(r["Depends"])...)
		out[p.Name] = p
	}
	return out
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// parseRecords reads deb822 paragraphs (Key: value, continuation lines
// start with a space).
func parseRecords(data []byte) []map[string]string {
	var recs []map[string]string
	cur := map[string]string{}
	last := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			if len(cur) > 0 {
				recs = append(recs, cur)
				cur, last = map[string]string{}, ""
			}
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				cur[last] += "\n" + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if ok {
				last = k
				cur[k] = strings.TrimSpace(v)
			}
		}
	}
	if len(cur) > 0 {
		recs = append(recs, cur)
	}
	return recs
}

// parseDepends returns the first alternative of each relation of a
// Depends field, without version constraints or architecture qualifiers:
// "libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, libfoo:any" gives
// libc6, debconf, libfoo.
func parseDepends(field string) []string {
	var out []string
	for _, rel := range strings.Split(field, ",") {
		alt, _, _ := strings.Cut(rel, "|")
		alt = strings.TrimSpace(alt)
		if i := strings.IndexAny(alt, " ([<"); i >= 0 {
			alt = alt[:i]
		}
		alt, _, _ = strings.Cut(alt, ":")
		if alt != "" {
			out = append(out, alt)
		}
	}
	return out
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// aptArchives is where apt keeps the packages it downloaded.
var aptArchives = "/var/cache/apt/archives"

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), ".copy-")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(out.Name(), dst)
}

// download returns the .deb of p from the cache (or apt's own archive
// cache), fetching it with apt-get download when it is missing or does
// not match apt's SHA256.
func (a *apt) download(ctx context.Context, p *pkgInfo) (string, error) {
	if err := os.MkdirAll(a.cache, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(a.cache, path.Base(p.Filename))
	if sum, err := fileSHA256(dst); err == nil && (p.SHA256 == "" || sum == p.SHA256) {
		a.log.Debug("package cached", "package", p, "file", dst)
		return dst, nil
	}
	// apt's own archive cache may hold it (installed once, or fetched by
	// apt-get install --download-only): no network needed then.
	if p.SHA256 != "" {
		local := filepath.Join(aptArchives, path.Base(p.Filename))
		if sum, err := fileSHA256(local); err == nil && sum == p.SHA256 {
			if err := copyFile(local, dst); err == nil {
				a.log.Debug("package from apt's cache", "package", p, "file", local)
				return dst, nil
			}
		}
	}
	tmp, err := os.MkdirTemp(a.cache, ".download-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	a.log.Info("downloading", "package", p.String())
	// The sandbox user _apt cannot write into root's directories; the
	// download is verified by apt (signed indexes) and again below.
	if _, err := runTool(ctx, tmp, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", p.Name+"="+p.Version); err != nil {
		return "", fmt.Errorf("download %s: %w", p, err)
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return "", err
	}
	var got string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".deb") {
			got = filepath.Join(tmp, e.Name())
		}
	}
	if got == "" {
		return "", fmt.Errorf("download %s: apt-get download left no .deb: %w", p, ErrTool)
	}
	if p.SHA256 != "" {
		sum, err := fileSHA256(got)
		if err != nil {
			return "", err
		}
		if sum != p.SHA256 {
			return "", fmt.Errorf("download %s: sha256 %s, apt-cache says %s: %w", p, sum, p.SHA256, ErrTool)
		}
	}
	if err := os.Rename(got, dst); err != nil {
		return "", err
	}
	return dst, nil
}

// extract unpacks a .deb's files into dir (no maintainer scripts run).
func (a *apt) extract(ctx context.Context, deb, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := runTool(ctx, "", "dpkg-deb", "-x", deb, dir); err != nil {
		return fmt.Errorf("unpack %s: %w", filepath.Base(deb), err)
	}
	return nil
}
