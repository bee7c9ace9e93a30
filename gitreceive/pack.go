package gitreceive

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// packFormatError is a malformed pack.
type packFormatError struct{ msg string }

func (e *packFormatError) Error() string { return "malformed pack: " + e.msg }

func badPack(format string, args ...any) error {
	return &packFormatError{msg: fmt.Sprintf(format, args...)}
}

// copyPack copies exactly one packfile from r to w and returns its object
// count. The pack's end is found by walking its objects, not by EOF: the
// client keeps the channel open after the pack to read the report. Objects
// are inflated to find their ends and check their sizes; the checksum and
// deltas are verified by the object store that indexes the copy.
func copyPack(r io.Reader, w io.Writer) (uint32, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	raw := &countWriter{w: bw}
	pr := &packReader{r: bufio.NewReaderSize(io.TeeReader(r, raw), 64<<10)}

	var hdr [12]byte
	if _, err := io.ReadFull(pr, hdr[:]); err != nil {
		return 0, err
	}
	if !bytes.Equal(hdr[:4], []byte("PACK")) {
		return 0, badPack("bad signature")
	}
	if v := binary.BigEndian.Uint32(hdr[4:8]); v != 2 && v != 3 {
		return 0, badPack("unsupported version %d", v)
	}
	count := binary.BigEndian.Uint32(hdr[8:12])

	var zr io.ReadCloser
	for i := uint32(0); i < count; i++ {
		size, typ, err := readObjectHeader(pr)
		if err != nil {
			return 0, err
		}
		switch typ {
		case 1, 2, 3, 4: // commit, tree, blob, tag
		case 6: // ofs-delta: a base offset, 7 bits a byte
			for {
				c, err := pr.ReadByte()
				if err != nil {
					return 0, err
				}
				if c&0x80 == 0 {
					break
				}
			}
		case 7: // ref-delta: the base object's id
			var base [20]byte
			if _, err := io.ReadFull(pr, base[:]); err != nil {
				return 0, err
			}
		default:
			return 0, badPack("object %d has unknown type %d", i, typ)
		}
		if zr == nil {
			zr, err = zlib.NewReader(pr)
		} else {
			err = zr.(zlib.Resetter).Reset(pr, nil)
		}
		if err != nil {
			return 0, zlibError(err)
		}
		n, err := io.Copy(io.Discard, zr)
		if err != nil {
			return 0, zlibError(err)
		}
		if n != size {
			return 0, badPack("object %d inflates to %d bytes, not %d", i, n, size)
		}
	}
	var trailer [20]byte
	if _, err := io.ReadFull(pr, trailer[:]); err != nil {
		return 0, err
	}
	if raw.n != pr.n {
		return 0, badPack("%d unexpected bytes after the pack", raw.n-pr.n)
	}
	return count, bw.Flush()
}

func zlibError(err error) error {
	var ce flate.CorruptInputError
	if errors.Is(err, zlib.ErrHeader) || errors.Is(err, zlib.ErrChecksum) || errors.As(err, &ce) {
		return badPack("corrupt object data: %v", err)
	}
	return err
}

// readObjectHeader reads an object's type and inflated size.
func readObjectHeader(r io.ByteReader) (size int64, typ byte, err error) {
	c, err := r.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	typ = (c >> 4) & 7
	size = int64(c & 15)
	for shift := 4; c&0x80 != 0; shift += 7 {
		if shift > 56 {
			return 0, 0, badPack("object size overflows")
		}
		if c, err = r.ReadByte(); err != nil {
			return 0, 0, err
		}
		size |= int64(c&0x7f) << shift
	}
	return size, typ, nil
}

// packReader counts the bytes its consumers take. It is an io.ByteReader
// so that zlib/flate read no further than each stream's end.
type packReader struct {
	r *bufio.Reader
	n int64
}

func (p *packReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	return n, err
}

func (p *packReader) ReadByte() (byte, error) {
	c, err := p.r.ReadByte()
	if err == nil {
		p.n++
	}
	return c, err
}

// countWriter counts what it writes to w.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
