package blockimage_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/hullproject/hull/blockimage"
)

// BenchmarkBuild times images of a ~45 MiB tree of 3000 small files and a
// few large ones.
func BenchmarkBuild(b *testing.B) {
	src := b.TempDir()
	rnd := rand.New(rand.NewPCG(3, 4))
	for d := 0; d < 30; d++ {
		dir := filepath.Join(src, fmt.Sprintf("d%02d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 100; f++ {
			data := make([]byte, 200+rnd.IntN(8000))
			for i := range data {
				data[i] = byte('a' + rnd.IntN(26))
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	for i := 0; i < 10; i++ {
		data := make([]byte, 3<<20)
		for j := range data {
			data[j] = byte(rnd.Uint32())
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("big%d", i)), data, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	for _, fs := range []string{"ext4", "erofs"} {
		b.Run(fs, func(b *testing.B) {
			needToolB(b, "mkfs."+fs)
			out := b.TempDir()
			for i := 0; i < b.N; i++ {
				if err := blockimage.Build(context.Background(), src, filepath.Join(out, "img"), fs, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func needToolB(b *testing.B, name string) {
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return
		}
	}
	b.Skipf("%s not installed", name)
}
