package diff_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hullproject/hull/diff"
)

var (
	benchOnce  sync.Once
	benchLayer []byte // gzip
	benchRaw   int
)

// benchmarkLayer is a gzip layer shaped like a distribution's: ~3000 small
// text-like files in nested directories and a few large binaries, about
// 60 MiB uncompressed.
func benchmarkLayer(b *testing.B) []byte {
	benchOnce.Do(func() {
		rnd := rand.New(rand.NewPCG(1, 2))
		words := strings.Fields("the quick brown fox jumps over lazy dog container image layer overlay snapshot hull kernel")
		var hdrs []e
		for d := 0; d < 60; d++ {
			dname := fmt.Sprintf("usr/share/pkg%02d/", d)
			hdrs = append(hdrs, dir(dname, 0o755))
			for f := 0; f < 50; f++ {
				var sb strings.Builder
				n := 200 + rnd.IntN(12000)
				for sb.Len() < n {
					sb.WriteString(words[rnd.IntN(len(words))])
					sb.WriteByte(' ')
				}
				hdrs = append(hdrs, file(fmt.Sprintf("%sfile%03d.txt", dname, f), sb.String(), 0o644))
			}
		}
		hdrs = append(hdrs, dir("usr/", 0o755), dir("usr/bin/", 0o755))
		for i := 0; i < 20; i++ {
			data := make([]byte, 2<<20)
			for j := 0; j < len(data); j += 8 {
				v := rnd.Uint64() & 0x0f0f0f0f0f0f0f0f // half-compressible, like code
				for k := 0; k < 8; k++ {
					data[j+k] = byte(v >> (8 * k))
				}
			}
			hdrs = append(hdrs, file(fmt.Sprintf("usr/bin/tool%02d", i), string(data), 0o755))
		}
		raw := mkTar(b, hdrs...)
		benchRaw = len(raw)
		benchLayer = gz(b, raw)
	})
	return benchLayer
}

// BenchmarkApply unpacks the same gzip layer with each configuration, and
// with GNU tar (tar -xzpf --xattrs) as the peer.
func BenchmarkApply(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	layer := benchmarkLayer(b)
	b.Logf("layer: %d bytes gzip, %d bytes tar", len(layer), benchRaw)
	configs := []struct {
		name      string
		backend   string
		gzip      string
		readahead bool
	}{
		{"overlay/pgzip+readahead", "overlay", "pgzip", true},
		{"overlay/pgzip", "overlay", "pgzip", false},
		{"overlay/klauspost+readahead", "overlay", "klauspost", true},
		{"overlay/klauspost", "overlay", "klauspost", false},
		{"native/pgzip+readahead", "native", "pgzip", true},
	}
	for _, c := range configs {
		b.Run(c.name, func(b *testing.B) {
			defer diff.SetGzipDecoder(c.gzip)()
			defer diff.SetReadahead(c.readahead)()
			var be backend
			for _, x := range backends {
				if x.name == c.backend {
					be = x
				}
			}
			root := b.TempDir()
			s, err := be.open(root)
			if err != nil {
				b.Skip(err)
			}
			defer s.Close()
			ctx := context.Background()
			// A parent layer, so overlay applies into an upper dir.
			ms, err := s.Prepare(ctx, "base-x", "")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := diff.Apply(ctx, ms, bytes.NewReader(mkTar(b, dir("etc/", 0o755))), ""); err != nil {
				b.Fatal(err)
			}
			if err := s.Commit(ctx, "base", "base-x"); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(benchRaw))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				key := fmt.Sprint("k", i)
				ms, err := s.Prepare(ctx, key, "base")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := diff.Apply(ctx, ms, bytes.NewReader(layer), "application/vnd.oci.image.layer.v1.tar+gzip"); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := s.Remove(ctx, key); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
	b.Run("gnu-tar", func(b *testing.B) {
		tarBin, err := exec.LookPath("tar")
		if err != nil {
			b.Skip("no tar")
		}
		src := filepath.Join(b.TempDir(), "layer.tar.gz")
		if err := os.WriteFile(src, layer, 0o644); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(benchRaw))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			dst := filepath.Join(b.TempDir(), "x")
			if err := os.Mkdir(dst, 0o755); err != nil {
				b.Fatal(err)
			}
			if out, err := exec.Command(tarBin, "-xzpf", src, "--xattrs", "-C", dst).CombinedOutput(); err != nil {
				b.Fatalf("tar: %v: %s", err, out)
			}
			b.StopTimer()
			os.RemoveAll(dst)
			b.StartTimer()
		}
	})
}

// BenchmarkPrepareContainer times a container's rootfs snapshot on top of
// the unpacked benchmark layer: overlay creates two directories, native
// copies the tree.
func BenchmarkPrepareContainer(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	layer := benchmarkLayer(b)
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s, err := be.open(b.TempDir())
			if err != nil {
				b.Skip(err)
			}
			defer s.Close()
			ctx := context.Background()
			ms, err := s.Prepare(ctx, "l-x", "")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := diff.Apply(ctx, ms, bytes.NewReader(layer), ""); err != nil {
				b.Fatal(err)
			}
			if err := s.Commit(ctx, "l", "l-x"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				key := fmt.Sprint("c", i)
				if _, err := s.Prepare(ctx, key, "l"); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := s.Remove(ctx, key); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkDecompress reads the benchmark layer through each gzip decoder
// and SHA-256, without touching the filesystem: the CPU side of Apply.
func BenchmarkDecompress(b *testing.B) {
	layer := benchmarkLayer(b)
	for _, impl := range []string{"pgzip", "klauspost"} {
		b.Run(impl, func(b *testing.B) {
			defer diff.SetGzipDecoder(impl)()
			b.SetBytes(int64(benchRaw))
			for i := 0; i < b.N; i++ {
				r, closeFn, err := diff.Decompress(bytes.NewReader(layer), diff.Gzip)
				if err != nil {
					b.Fatal(err)
				}
				h := sha256.New()
				if _, err := io.Copy(h, r); err != nil {
					b.Fatal(err)
				}
				closeFn()
			}
		})
	}
}
