package initramfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
)

// The "new ASCII" (newc) cpio format, the one the kernel's initramfs
// unpacker reads (Documentation/driver-api/early-userspace/buffer-format.rst):
//
//	header: "070701" + 13 fields of 8 hex digits
//	        ino mode uid gid nlink mtime filesize devmajor devminor
//	        rdevmajor rdevminor namesize check
//	name:   namesize bytes including the trailing NUL, padded to 4 bytes
//	data:   filesize bytes, padded to 4 bytes
//
// The archive ends with an entry named "TRAILER!!!".

const (
	newcMagic   = "070701"
	headerLen   = 6 + 13*8
	trailerName = "TRAILER!!!"
)

// Unix file type bits of the cpio mode field.
const (
	typeMask    = 0o170000
	typeDir     = 0o040000
	typeRegular = 0o100000
	typeSymlink = 0o120000
	typeChar    = 0o020000
	typeBlock   = 0o060000
)

// ErrFormat is returned by the Reader for input that is not a newc archive.
var ErrFormat = errors.New("initramfs: not a newc cpio archive")

// Header describes one archive entry.
type Header struct {
	Name     string      // path inside the archive, without a leading "/"
	Mode     fs.FileMode // permission bits and type (fs.ModeDir, fs.ModeSymlink, fs.ModeCharDevice|fs.ModeDevice, ...)
	UID, GID int
	Size     int64  // data length; for symlinks, the length of Linkname
	Linkname string // symlink target
	// Major/Minor of the device for character and block device nodes.
	Major, Minor uint32
	MTime        int64
}

func cpioMode(m fs.FileMode) (uint32, error) {
	perm := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	switch {
	case m.IsRegular():
		return typeRegular | perm, nil
	case m.IsDir():
		return typeDir | perm, nil
	case m&fs.ModeSymlink != 0:
		return typeSymlink | perm, nil
	case m&fs.ModeCharDevice != 0:
		return typeChar | perm, nil
	case m&fs.ModeDevice != 0:
		return typeBlock | perm, nil
	}
	return 0, fmt.Errorf("initramfs: unsupported file mode %v", m)
}

func fileMode(c uint32) fs.FileMode {
	m := fs.FileMode(c & 0o777)
	if c&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if c&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if c&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch c & typeMask {
	case typeDir:
		m |= fs.ModeDir
	case typeSymlink:
		m |= fs.ModeSymlink
	case typeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case typeBlock:
		m |= fs.ModeDevice
	}
	return m
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }

// Writer writes a newc cpio archive. Entries get sequential inode numbers, so
// the same input gives the same bytes.
type Writer struct {
	w       io.Writer
	ino     uint32
	remain  int64 // data bytes still owed for the current entry
	padding int64 // padding after the current entry's data
	closed  bool
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, ino: 1} }

func (cw *Writer) finishEntry() error {
	if cw.remain != 0 {
		return fmt.Errorf("initramfs: entry short by %d bytes", cw.remain)
	}
	if cw.padding > 0 {
		if _, err := cw.w.Write(make([]byte, cw.padding)); err != nil {
			return err
		}
		cw.padding = 0
	}
	return nil
}

func (cw *Writer) writeHeader(name string, mode uint32, h *Header, size int64, nlink uint32) error {
	if err := cw.finishEntry(); err != nil {
		return err
	}
	if size < 0 || size > 0xffffffff {
		return fmt.Errorf("initramfs: %s: size %d does not fit a newc header", name, size)
	}
	fields := []uint32{
		cw.ino, mode, uint32(h.UID), uint32(h.GID), nlink, uint32(h.MTime),
		uint32(size), 0, 0, h.Major, h.Minor, uint32(len(name) + 1), 0,
	}
	cw.ino++
	var b strings.Builder
	b.WriteString(newcMagic)
	for _, f := range fields {
		fmt.Fprintf(&b, "%08x", f)
	}
	b.WriteString(name)
	b.WriteByte(0)
	hdr := b.String()
	hdr += strings.Repeat("\x00", int(pad4(int64(len(hdr)))))
	if _, err := io.WriteString(cw.w, hdr); err != nil {
		return err
	}
	cw.remain = size
	cw.padding = pad4(size)
	return nil
}

// WriteHeader starts a new entry. For regular files, Size bytes must then be
// written with Write; for symlinks the target is taken from Linkname.
func (cw *Writer) WriteHeader(h *Header) error {
	if cw.closed {
		return errors.New("initramfs: write to closed archive")
	}
	name := strings.TrimPrefix(h.Name, "/")
	if name == "" || name == trailerName || strings.Contains(name, "\x00") {
		return fmt.Errorf("initramfs: invalid entry name %q", h.Name)
	}
	mode, err := cpioMode(h.Mode)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	switch {
	case h.Mode&fs.ModeSymlink != 0:
		if err := cw.writeHeader(name, mode, h, int64(len(h.Linkname)), 1); err != nil {
			return err
		}
		_, err := cw.Write([]byte(h.Linkname))
		return err
	case h.Mode.IsRegular():
		return cw.writeHeader(name, mode, h, h.Size, 1)
	case h.Mode.IsDir():
		return cw.writeHeader(name, mode, h, 0, 2)
	default:
		return cw.writeHeader(name, mode, h, 0, 1)
	}
}

// Write writes data of the current regular-file entry.
func (cw *Writer) Write(p []byte) (int, error) {
	if int64(len(p)) > cw.remain {
		return 0, fmt.Errorf("initramfs: write of %d bytes exceeds entry size (%d left)", len(p), cw.remain)
	}
	n, err := cw.w.Write(p)
	cw.remain -= int64(n)
	return n, err
}

// Close writes the trailer. It does not close the underlying writer.
func (cw *Writer) Close() error {
	if cw.closed {
		return nil
	}
	if err := cw.writeHeader(trailerName, 0, &Header{}, 0, 1); err != nil {
		return err
	}
	cw.closed = true
	return cw.finishEntry()
}

// Reader reads a newc cpio archive.
type Reader struct {
	r      *bufio.Reader
	remain int64
	pad    int64
}

// NewReader returns a Reader reading from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReader(r)} }

// Next advances to the next entry. It returns io.EOF after the trailer.
func (cr *Reader) Next() (*Header, error) {
	if _, err := io.CopyN(io.Discard, cr.r, cr.remain+cr.pad); err != nil {
		return nil, fmt.Errorf("%w: truncated entry: %w", ErrFormat, err)
	}
	cr.remain, cr.pad = 0, 0
	raw := make([]byte, headerLen)
	if _, err := io.ReadFull(cr.r, raw); err != nil {
		return nil, fmt.Errorf("%w: reading header: %w", ErrFormat, err)
	}
	if string(raw[:6]) != newcMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrFormat, raw[:6])
	}
	var f [13]uint32
	for i := range f {
		v, err := strconv.ParseUint(string(raw[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: header field %d: %w", ErrFormat, i, err)
		}
		f[i] = uint32(v)
	}
	nameSize := int64(f[11])
	if nameSize < 1 || nameSize > 4096 {
		return nil, fmt.Errorf("%w: name size %d", ErrFormat, nameSize)
	}
	nameBuf := make([]byte, nameSize+pad4(headerLen+nameSize))
	if _, err := io.ReadFull(cr.r, nameBuf); err != nil {
		return nil, fmt.Errorf("%w: reading name: %w", ErrFormat, err)
	}
	name := string(nameBuf[:nameSize-1])
	if name == trailerName {
		return nil, io.EOF
	}
	h := &Header{
		Name: name, Mode: fileMode(f[1]), UID: int(f[2]), GID: int(f[3]),
		MTime: int64(f[5]), Size: int64(f[6]), Major: f[9], Minor: f[10],
	}
	cr.remain, cr.pad = h.Size, pad4(h.Size)
	if h.Mode&fs.ModeSymlink != 0 {
		target := make([]byte, h.Size)
		if _, err := io.ReadFull(cr.r, target); err != nil {
			return nil, fmt.Errorf("%w: reading symlink target: %w", ErrFormat, err)
		}
		h.Linkname = string(target)
		cr.remain = 0
	}
	return h, nil
}

// Read reads data of the current entry.
func (cr *Reader) Read(p []byte) (int, error) {
	if cr.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > cr.remain {
		p = p[:cr.remain]
	}
	n, err := cr.r.Read(p)
	cr.remain -= int64(n)
	if err == io.EOF && cr.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
