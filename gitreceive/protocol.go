package gitreceive

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/dkhq/dk"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/pktline"
)

// request is the command section of a push.
type request struct {
	cmds    []*command
	caps    map[string]bool // capability names the client asked for
	shallow bool            // the client sent shallow lines
}

// readRequest reads the commands up to their flush-pkt, and nothing more:
// the pack (if any) follows on in. A bare flush (or EOF) means the client
// has nothing to push.
func readRequest(ctx context.Context, in io.Reader) (*request, error) {
	req := &request{caps: map[string]bool{}}
	sc := pktline.NewScanner(&limitReader{ctx: ctx, r: in})
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 { // flush-pkt
			return req, nil
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		if rest, ok := bytes.CutPrefix(line, []byte("shallow ")); ok {
			if _, err := parseHash(string(rest)); err != nil {
				return nil, dk.Errorf(dk.EINVALID, "malformed shallow line from git client")
			}
			req.shallow = true
			continue
		}
		if len(req.cmds) == 0 {
			var caps []byte
			line, caps, _ = bytes.Cut(line, []byte{0})
			for _, c := range strings.Fields(string(caps)) {
				name, _, _ := strings.Cut(c, "=")
				req.caps[name] = true
			}
		}
		cmd, err := parseCommand(string(line))
		if err != nil {
			return nil, err
		}
		req.cmds = append(req.cmds, cmd)
	}
	if err := sc.Err(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("read push commands: %w", err)
	}
	if len(req.cmds) > 0 || req.shallow {
		return nil, dk.Errorf(dk.EINVALID, "push commands ended early")
	}
	return req, nil // EOF before anything: nothing to do
}

func parseCommand(line string) (*command, error) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return nil, dk.Errorf(dk.EINVALID, "malformed push command from git client")
	}
	old, err1 := parseHash(f[0])
	nu, err2 := parseHash(f[1])
	if err1 != nil || err2 != nil || (old.IsZero() && nu.IsZero()) {
		return nil, dk.Errorf(dk.EINVALID, "malformed push command from git client")
	}
	return &command{old: old, new: nu, name: plumbing.ReferenceName(f[2])}, nil
}

func parseHash(s string) (plumbing.Hash, error) {
	if len(s) != 40 {
		return plumbing.ZeroHash, errors.New("bad object id")
	}
	if _, err := hex.DecodeString(s); err != nil {
		return plumbing.ZeroHash, errors.New("bad object id")
	}
	return plumbing.NewHash(s), nil
}

// conn writes the server's side of the push: progress on side-band
// channel 2 and the report, in channel 1 when side-band-64k is on. It is
// safe for concurrent use (a deploy may write progress from goroutines).
type conn struct {
	mu       sync.Mutex
	out      io.Writer
	sideband bool
	report   bool
}

// maxBand is the largest side-band-64k payload after the channel byte.
const maxBand = pktline.MaxPayloadSize - 1

func (c *conn) band(ch byte, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(p) > 0 {
		n := min(len(p), maxBand)
		pkt := make([]byte, 0, 5+n)
		pkt = fmt.Appendf(pkt, "%04x", 5+n)
		pkt = append(pkt, ch)
		pkt = append(pkt, p[:n]...)
		if _, err := c.out.Write(pkt); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// progressf writes a progress message, if the client can show one.
func (c *conn) progressf(format string, args ...any) {
	if c.sideband {
		_ = c.band(2, fmt.Appendf(nil, format, args...))
	}
}

func (c *conn) progressWriter() io.Writer {
	if !c.sideband {
		return io.Discard
	}
	return progressWriter{c}
}

type progressWriter struct{ c *conn }

func (w progressWriter) Write(p []byte) (int, error) {
	if err := w.c.band(2, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// sendReport sends report-status (if asked for) and the final flush.
func (c *conn) sendReport(unpack string, cmds []*command) error {
	if !c.report {
		if c.sideband {
			return c.flush()
		}
		return nil
	}
	var buf bytes.Buffer
	e := pktline.NewEncoder(&buf)
	if err := e.EncodeString("unpack " + unpack + "\n"); err != nil {
		return err
	}
	for _, cmd := range cmds {
		line := "ok " + cmd.name.String() + "\n"
		if cmd.reason != "" {
			line = "ng " + cmd.name.String() + " " + cmd.reason + "\n"
		}
		if err := e.EncodeString(line); err != nil {
			return err
		}
	}
	if err := e.Flush(); err != nil {
		return err
	}
	if !c.sideband {
		return c.write(buf.Bytes())
	}
	if err := c.band(1, buf.Bytes()); err != nil {
		return err
	}
	return c.flush()
}

func (c *conn) flush() error { return c.write(pktline.FlushPkt) }

func (c *conn) write(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.out.Write(p)
	return err
}

// limitReader reads from r, failing once more than max bytes (0: no limit)
// were read or ctx is done.
type limitReader struct {
	ctx context.Context
	r   io.Reader
	max int64
	n   int64
}

type tooLargeError struct{ max int64 }

func (e *tooLargeError) Error() string { return fmt.Sprintf("more than %d bytes", e.max) }

func (l *limitReader) Read(p []byte) (int, error) {
	if err := l.ctx.Err(); err != nil {
		return 0, err
	}
	if l.max > 0 {
		// Whoever asks for a byte past max is reading a bigger pack.
		if l.n >= l.max {
			return 0, &tooLargeError{max: l.max}
		}
		p = p[:min(int64(len(p)), l.max-l.n)]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}
