package engine

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/dkhq/dk"
)

// maxLine bounds how much of one unterminated line is buffered before it is
// delivered in pieces.
const maxLine = 64 << 10

// Logs calls w for each line a container wrote, stdout and stderr interleaved
// in the order the engine stored them: the last tail lines (tail<0: all),
// then, when follow is set, new lines until ctx ends or the container is
// removed. Each line comes with the engine's timestamp and without its
// newline; a last line with no newline is delivered too. Containers of other
// instances are dk.ENOTFOUND.
func (r *Runtime) Logs(ctx context.Context, id string, tail int, follow bool, w dk.LogWriter) error {
	info, err := r.inspect(ctx, id)
	if err != nil {
		return err
	}
	opts := container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: follow, Tail: "all"}
	if tail >= 0 {
		opts.Tail = strconv.Itoa(tail)
	}
	rc, err := r.docker.ContainerLogs(ctx, info.ID, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("logs of container %s: %w", shortID(id), err)
	}
	defer rc.Close()

	stdout, stderr := &lineWriter{w: w}, &lineWriter{w: w}
	_, err = stdcopy.StdCopy(stdout, stderr, rc)
	if ctx.Err() != nil {
		// Following ends when the caller is done: that is not a failure.
		return nil
	}
	stdout.flush()
	stderr.flush()
	if err != nil {
		return fmt.Errorf("logs of container %s: %w", shortID(id), err)
	}
	return nil
}

// lineWriter splits one stream of the engine's timestamped log output into
// lines. The engine sends each log entry as "<RFC3339Nano> <text>" in its own
// frame, and stdcopy writes each frame with one Write. An entry's text ends
// with a newline, except when the output ended without one (delivered as a
// line of its own) or when it is a 16 KiB piece of a longer line: the next
// entry's text continues that, its timestamp dropped.
type lineWriter struct {
	w   dk.LogWriter
	ts  time.Time
	buf []byte // pending piece of a long line
}

// pieceSize is the size the engine cuts long lines into.
const pieceSize = 16 << 10

func (l *lineWriter) Write(p []byte) (int, error) {
	ts, text, ok := cutTimestamp(p)
	if len(l.buf) == 0 {
		l.ts = ts
		if !ok {
			l.ts = time.Now()
		}
	}
	for {
		i := bytes.IndexByte(text, '\n')
		if i < 0 {
			break
		}
		l.buf = append(l.buf, text[:i]...)
		l.emit()
		text = text[i+1:]
	}
	if len(text) > 0 {
		l.buf = append(l.buf, text...)
		if len(text) < pieceSize || len(l.buf) >= maxLine {
			l.emit()
		}
	}
	return len(p), nil
}

func (l *lineWriter) emit() {
	line := bytes.TrimSuffix(l.buf, []byte{'\r'})
	l.w(l.ts, string(line))
	l.buf = l.buf[:0]
}

// flush delivers a pending unterminated line.
func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.emit()
	}
}

// cutTimestamp splits "<RFC3339Nano> rest" into its time and rest.
func cutTimestamp(p []byte) (time.Time, []byte, bool) {
	i := bytes.IndexByte(p, ' ')
	if i < 20 || i > 40 { // "2006-01-02T15:04:05Z" is the shortest
		return time.Time{}, p, false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(p[:i]))
	if err != nil {
		return time.Time{}, p, false
	}
	return ts, p[i+1:], true
}
