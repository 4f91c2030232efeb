package diff

import "io"

// SetGzipDecoder switches the gzip implementation for benchmarks.
func SetGzipDecoder(name string) func() {
	old := gzipDecoder
	gzipDecoder = name
	return func() { gzipDecoder = old }
}

// SetReadahead switches the decompression goroutine off for benchmarks.
func SetReadahead(on bool) func() {
	old := useReadahead
	useReadahead = on
	return func() { useReadahead = old }
}

// SetOverlayFastPath switches between writing into the upper directory and
// writing through a mounted overlay.
func SetOverlayFastPath(on bool) func() {
	old := overlayFastPath
	overlayFastPath = on
	return func() { overlayFastPath = old }
}

// Decompress exposes the decompressor choice for benchmarks.
func Decompress(r io.Reader, c Compression) (io.Reader, func(), error) { return decompress(r, c) }
