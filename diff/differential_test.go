package diff_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hullproject/hull/diff"
)

// TestApplyPathsAgree applies random chains of layers (files, directories,
// symlinks, hardlinks, whiteouts, opaque directories, implicit parents) in
// three ways - the overlay fast path into upper directories, the native
// delete path, and through a mounted overlay where the kernel makes the
// whiteouts - and checks that all present the same tree. Any divergence is
// a bug in one of them. HULL_DIFF_SEEDS and HULL_DIFF_FIRST_SEED widen the
// hunt.
func TestApplyPathsAgree(t *testing.T) {
	needRoot(t)
	seeds := 25
	if testing.Short() {
		seeds = 5
	}
	if n, err := strconv.Atoi(os.Getenv("HULL_DIFF_SEEDS")); err == nil {
		seeds = n // a longer hunt: HULL_DIFF_SEEDS=500
	}
	first, _ := strconv.Atoi(os.Getenv("HULL_DIFF_FIRST_SEED"))
	for seed := first; seed < first+seeds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			layers := randomLayers(t, uint64(seed), 4)
			var views []string
			// The third way writes through a mounted overlay, where the
			// kernel makes the whiteouts: an oracle independent of the
			// layer-stack resolution the other two share.
			ways := append(slices.Clone(backends), backend{name: "overlay-mounted", open: backends[0].open})
			for _, b := range ways {
				ctx := context.Background()
				if b.name == "overlay-mounted" {
					restore := diff.SetOverlayFastPath(false)
					defer restore()
				}
				s, _ := openBackend(t, b)
				// A layer the model got wrong (a hardlink to a directory, a
				// file under a file) must fail on both backends alike; it is
				// then skipped.
				var outcome []string
				parent := ""
				for i, l := range layers {
					key, name := fmt.Sprint("k", i), fmt.Sprint("l", i)
					ms, err := s.Prepare(ctx, key, parent)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := diff.Apply(ctx, ms, bytes.NewReader(l), ""); err != nil {
						outcome = append(outcome, fmt.Sprintf("layer %d failed", i))
						t.Logf("%s: layer %d: %v", b.name, i, err)
						if err := s.Remove(ctx, key); err != nil {
							t.Fatal(err)
						}
						continue
					}
					if err := s.Commit(ctx, name, key); err != nil {
						t.Fatal(err)
					}
					parent = name
				}
				if parent == "" {
					views = append(views, strings.Join(outcome, "\n"))
					continue
				}
				ms, err := s.View(ctx, "v", parent)
				if err != nil {
					t.Fatal(err)
				}
				withMounted(t, ms, func(root string) {
					views = append(views, strings.Join(outcome, "\n")+"\n"+mergedView(t, root))
				})
			}
			for i := 1; i < len(views); i++ {
				if views[i] != views[0] {
					t.Errorf("%s and %s disagree:\n%s", ways[0].name, ways[i].name, lineDiffs(views[0], views[i]))
				}
			}
		})
	}
}

// randomLayers builds n layers, tracking a model of the merged tree so that
// whiteouts, opaques and hardlinks mostly name things that exist.
func randomLayers(t *testing.T, seed uint64, n int) [][]byte {
	rnd := rand.New(rand.NewPCG(seed, 99))
	type node struct{ dir bool }
	tree := map[string]node{} // the model: path -> kind, roughly
	names := []string{"a", "b", "c", "d", "lib", "x"}
	pick := func(dirsOnly bool) string {
		var ps []string
		for p, nd := range tree {
			if !dirsOnly || nd.dir {
				ps = append(ps, p)
			}
		}
		if len(ps) == 0 {
			return ""
		}
		slices.Sort(ps)
		return ps[rnd.IntN(len(ps))]
	}
	var out [][]byte
	for l := 0; l < n; l++ {
		var hdrs []e
		written := map[string]bool{}
		add := func(h e) {
			h.Name = strings.TrimPrefix(h.Name, "/")
			hdrs = append(hdrs, h)
		}
		ops := 6 + rnd.IntN(10)
		for i := 0; i < ops; i++ {
			parent := ""
			if rnd.IntN(3) > 0 {
				parent = pick(true)
			}
			name := path.Join(parent, names[rnd.IntN(len(names))]+fmt.Sprint(rnd.IntN(3)))
			switch op := rnd.IntN(10); {
			case op < 3: // file; sometimes without its parent's entry
				if parent != "" && rnd.IntN(2) == 0 && !written[parent] {
					add(dir(parent+"/", 0o755))
					written[parent] = true
				}
				add(owned(file(name, fmt.Sprintf("%d-%d-%d", seed, l, i), []int64{0o644, 0o4755, 0o600}[rnd.IntN(3)]), rnd.IntN(2)*1000, 0))
				tree[name] = node{false}
			case op < 5: // directory
				add(owned(dir(name+"/", []int64{0o750, 0o1777, 0o700}[rnd.IntN(3)]), rnd.IntN(2)*1000, 0))
				written[name] = true
				tree[name] = node{true}
			case op == 5: // symlink to a directory, relative or absolute
				if target := pick(true); target != "" && !strings.HasPrefix(target, name) {
					link := "/" + target
					if rnd.IntN(2) == 0 {
						rel, _ := filepath.Rel(path.Dir("/"+name), "/"+target)
						link = rel
					}
					add(sym(name, link))
					tree[name] = node{false}
				}
			case op == 6: // whiteout of something that exists
				if victim := pick(false); victim != "" && !written[victim] {
					add(whiteout(path.Join(path.Dir(victim), ".wh."+path.Base(victim))))
					for p := range tree {
						if p == victim || strings.HasPrefix(p, victim+"/") {
							delete(tree, p)
						}
					}
				}
			case op == 7: // opaque directory with a new child
				if d := pick(true); d != "" {
					add(dir(d+"/", 0o755))
					add(whiteout(d + "/.wh..wh..opq"))
					add(file(d+"/fresh", "fresh", 0o600))
					written[d] = true
					for p := range tree {
						if strings.HasPrefix(p, d+"/") {
							delete(tree, p)
						}
					}
					tree[d+"/fresh"] = node{false}
				}
			case op == 8: // hardlink to an existing regular file
				var files []string
				for p, nd := range tree {
					if !nd.dir {
						files = append(files, p)
					}
				}
				slices.Sort(files)
				if len(files) > 0 {
					add(link(name, files[rnd.IntN(len(files))]))
					tree[name] = node{false}
				}
			default: // file through a path that may contain a symlink
				if p := pick(false); p != "" {
					add(file(p+"/through", "t", 0o644))
				}
			}
		}
		out = append(out, mkTar(t, hdrs...))
	}
	return out
}

// mergedView lists what a container sees: type, mode, owner, content and
// link targets (not times or inode numbers, which legitimately differ).
func mergedView(t *testing.T, root string) string {
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			line += " " + string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func lineDiffs(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range as {
		if !slices.Contains(bs, l) {
			out = append(out, "first only:  "+l)
		}
	}
	for _, l := range bs {
		if !slices.Contains(as, l) {
			out = append(out, "second only: "+l)
		}
	}
	return strings.Join(out, "\n")
}
