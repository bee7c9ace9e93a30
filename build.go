package dk

import (
	"fmt"
	"sync"
	"time"
)

// Build outcomes (Build.Status).
const (
	BuildSucceeded = "succeeded" // built and released
	BuildFailed    = "failed"    // the build, or the release it made, failed
)

// MaxBuildLog caps the output kept of one build; KeepBuilds is how many
// builds per app the store keeps.
const (
	MaxBuildLog = 1 << 20
	KeepBuilds  = 20
)

// Build is one push's build and deploy attempt, with the output the pusher
// saw. Builds are numbered per app (1, 2, …) in the order they start.
type Build struct {
	App       string        `json:"app"`
	Number    int           `json:"number"`
	Commit    string        `json:"commit,omitempty"`
	Author    string        `json:"author,omitempty"` // name of the key that pushed
	Release   int           `json:"release,omitempty"`
	Status    string        `json:"status"`
	Error     string        `json:"error,omitempty"`
	StartedAt time.Time     `json:"started_at"`
	Duration  time.Duration `json:"duration"`
	// Size is how many bytes of output the build wrote; Truncated says the
	// kept log holds only its start and its end.
	Size      int64 `json:"size"`
	Truncated bool  `json:"truncated,omitempty"`
	// Log is the captured output; only the store's BuildLog fills it.
	Log []byte `json:"-"`
}

// LogBuffer is an io.Writer that keeps at most Max bytes of what is written
// to it: the first quarter and the most recent rest, so both how a build
// started and how it ended survive. It is safe for concurrent use.
type LogBuffer struct {
	Max int // 0 means MaxBuildLog

	mu   sync.Mutex
	head []byte
	tail []byte // ring of the most recent bytes once head is full
	pos  int    // next write position in tail when it is full
	full bool
	n    int64
}

func (b *LogBuffer) max() int {
	if b.Max > 0 {
		return b.Max
	}
	return MaxBuildLog
}

// Write implements io.Writer; it never fails.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n += int64(len(p))
	headCap, tailCap := b.max()/4, b.max()-b.max()/4
	rest := p
	if len(b.head) < headCap {
		k := min(headCap-len(b.head), len(rest))
		b.head = append(b.head, rest[:k]...)
		rest = rest[k:]
	}
	if len(rest) >= tailCap {
		// Only the newest tailCap bytes of this write can survive.
		b.tail = append(b.tail[:0], rest[len(rest)-tailCap:]...)
		b.pos, b.full = 0, true
		return len(p), nil
	}
	for len(rest) > 0 {
		if !b.full {
			k := min(tailCap-len(b.tail), len(rest))
			b.tail = append(b.tail, rest[:k]...)
			rest = rest[k:]
			if len(b.tail) == tailCap {
				b.full = true
			}
			continue
		}
		k := copy(b.tail[b.pos:], rest)
		rest = rest[k:]
		b.pos = (b.pos + k) % tailCap
	}
	return len(p), nil
}

// Len is how many bytes were written in all.
func (b *LogBuffer) Len() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Bytes returns the kept output and whether some was cut; a cut is marked
// by a line saying how much.
func (b *LogBuffer) Bytes() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := int64(len(b.head) + len(b.tail))
	out := make([]byte, 0, kept+64)
	out = append(out, b.head...)
	cut := b.n - kept
	if cut > 0 {
		out = fmt.Appendf(out, "\n[… %d bytes of output not kept …]\n", cut)
	}
	if b.full {
		out = append(out, b.tail[b.pos:]...)
		out = append(out, b.tail[:b.pos]...)
	} else {
		out = append(out, b.tail...)
	}
	return out, cut > 0
}
