package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/containerd/console"
	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"google.golang.org/protobuf/proto"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := console.ConsoleFromFile(f)
	return err == nil
}

func imagesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "images", Aliases: []string{"image", "i"}, Short: "Manage images"}
	var platform string
	var noUnpack bool
	pull := &cobra.Command{
		Use: "pull REF", Short: "Pull an image from a registry", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := images(g)
			if err != nil {
				return err
			}
			st, err := c.Pull(cmd.Context(), &hullv1.PullRequest{Ref: args[0], Platform: platform, NoUnpack: noUnpack})
			if err != nil {
				return err
			}
			prog := newPullProgress(g.stdout, isTerminal(g.stdout) && !g.json())
			defer prog.close()
			for {
				m, err := st.Recv()
				if err == io.EOF {
					return errors.New("pull: the daemon ended the stream without an image")
				}
				if err != nil {
					prog.abort()
					return fromRPC(err)
				}
				if m.Progress != nil {
					prog.update(m.Progress)
				}
				if m.Image != nil {
					prog.close()
					if g.json() {
						return g.printJSON(m.Image)
					}
					fmt.Fprintf(g.stdout, "%s: %s\n", m.Image.Name, m.Image.Digest)
					return nil
				}
			}
		},
	}
	pull.Flags().StringVar(&platform, "platform", "", "os/arch[/variant] (default: this host)")
	pull.Flags().BoolVar(&noUnpack, "no-unpack", false, "fetch only, do not unpack layers")

	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List images", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := images(g)
			if err != nil {
				return err
			}
			r, err := c.List(cmd.Context(), &hullv1.Empty{})
			if err != nil {
				return err
			}
			if g.json() {
				var ms []proto.Message
				for _, i := range r.Images {
					ms = append(ms, i)
				}
				return g.printJSON(ms)
			}
			w := g.table()
			fmt.Fprintln(w, "REF\tDIGEST\tSIZE\tTYPE")
			for _, i := range r.Images {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", i.Name, i.Digest, i.Size, i.MediaType)
			}
			return w.Flush()
		},
	}
	var sync bool
	rm := &cobra.Command{
		Use: "rm REF...", Aliases: []string{"remove"}, Short: "Remove images", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := images(g)
			if err != nil {
				return err
			}
			for _, n := range args {
				if _, err := c.Remove(cmd.Context(), &hullv1.RemoveImageRequest{Name: n, Sync: sync}); err != nil {
					return err
				}
				fmt.Fprintln(g.stdout, n)
			}
			return nil
		},
	}
	rm.Flags().BoolVar(&sync, "sync", false, "collect garbage before returning")
	tag := &cobra.Command{
		Use: "tag SOURCE TARGET", Short: "Give an image another name", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := images(g)
			if err != nil {
				return err
			}
			img, err := c.Tag(cmd.Context(), &hullv1.TagImageRequest{Source: args[0], Target: args[1]})
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, img.Name)
			return nil
		},
	}
	var importName string
	imp := &cobra.Command{
		Use: "import FILE|DIR", Short: "Import an OCI layout or docker-save archive", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := images(g)
			if err != nil {
				return err
			}
			p, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			r, err := c.Import(cmd.Context(), &hullv1.ImportRequest{Path: p, Name: importName, NoUnpack: noUnpack})
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(r)
			}
			for _, i := range r.Images {
				fmt.Fprintf(g.stdout, "%s: %s\n", i.Name, i.Digest)
			}
			return nil
		},
	}
	imp.Flags().StringVar(&importName, "name", "", "name for images the archive leaves unnamed")
	imp.Flags().BoolVar(&noUnpack, "no-unpack", false, "do not unpack layers")
	exp := &cobra.Command{
		Use: "export FILE REF...", Short: "Export images as an OCI layout tar", Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := images(g)
			if err != nil {
				return err
			}
			p, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			_, err = c.Export(cmd.Context(), &hullv1.ExportRequest{Path: p, Names: args[1:], Platform: platform})
			return err
		},
	}
	exp.Flags().StringVar(&platform, "platform", "", "platform to export from a partly pulled index")
	prune := &cobra.Command{
		Use: "prune", Short: "Remove content and snapshots no image or container uses", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := images(g)
			if err != nil {
				return err
			}
			r, err := c.Prune(cmd.Context(), &hullv1.Empty{})
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(r)
			}
			fmt.Fprintf(g.stdout, "removed %d blobs (%d bytes) and %d snapshots\n", r.Blobs, r.Bytes, r.Snapshots)
			return nil
		},
	}
	cmd.AddCommand(pull, ls, rm, tag, imp, exp, prune)
	return cmd
}

// pullProgress shows layer progress: mpb bars on a terminal, one line per
// state change otherwise.
type pullProgress struct {
	w      io.Writer
	p      *mpb.Progress
	bars   map[string]*mpb.Bar
	status map[string]string
	live   map[string]*atomic.Value // status shown by a bar's decorator
	closed bool
}

func newPullProgress(w io.Writer, bars bool) *pullProgress {
	pp := &pullProgress{w: w, bars: map[string]*mpb.Bar{}, status: map[string]string{}, live: map[string]*atomic.Value{}}
	if bars {
		pp.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(40))
	}
	return pp
}

func short(d string) string {
	_, hex, ok := strings.Cut(d, ":")
	if ok && len(hex) > 12 {
		return hex[:12]
	}
	return d
}

func (pp *pullProgress) update(lp *hullv1.LayerProgress) {
	if pp.p == nil {
		if pp.status[lp.Digest] != lp.Status {
			pp.status[lp.Digest] = lp.Status
			if lp.Error != "" {
				fmt.Fprintf(pp.w, "%s: %s: %s\n", short(lp.Digest), lp.Status, lp.Error)
			} else {
				fmt.Fprintf(pp.w, "%s: %s\n", short(lp.Digest), lp.Status)
			}
		}
		return
	}
	b, ok := pp.bars[lp.Digest]
	if !ok {
		st := &atomic.Value{}
		st.Store(lp.Status)
		pp.live[lp.Digest] = st
		b = pp.p.AddBar(lp.Total,
			mpb.PrependDecorators(decor.Name(short(lp.Digest)+" "), decor.Any(func(decor.Statistics) string { return st.Load().(string) }, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f")),
		)
		pp.bars[lp.Digest] = b
	}
	pp.live[lp.Digest].Store(lp.Status)
	if lp.Total > 0 {
		b.SetTotal(lp.Total, false)
	}
	b.SetCurrent(lp.Offset)
	switch lp.Status {
	case "unpacked", "exists", "verified":
		if lp.Total > 0 {
			b.SetCurrent(lp.Total)
		}
	case "failed":
		b.Abort(false)
	}
}

func (pp *pullProgress) abort() {
	if pp.p == nil {
		return
	}
	for _, b := range pp.bars {
		b.Abort(false)
	}
}

func (pp *pullProgress) close() {
	if pp.p == nil || pp.closed {
		return
	}
	pp.closed = true
	for _, b := range pp.bars {
		b.SetTotal(-1, true)
	}
	pp.p.Wait()
}
