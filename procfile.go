package dk

import (
	"bufio"
	"bytes"
	"strings"
)

// ParseProcfile parses a Procfile: one "type: command" per line, blank lines
// and # comments ignored. Errors name the line.
func ParseProcfile(data []byte) (Processes, error) {
	procs := Processes{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, cmd, ok := strings.Cut(line, ":")
		name, cmd = strings.TrimSpace(name), strings.TrimSpace(cmd)
		if !ok || cmd == "" {
			return nil, Errorf(EINVALID, "Procfile line %d: want \"type: command\", got %q", n, line)
		}
		if err := ValidateProcessType(name); err != nil {
			return nil, Errorf(EINVALID, "Procfile line %d: %s", n, ErrorMessage(err))
		}
		if _, dup := procs[name]; dup {
			return nil, Errorf(EINVALID, "Procfile line %d: process type %q is declared twice", n, name)
		}
		procs[name] = cmd
	}
	if err := sc.Err(); err != nil {
		return nil, Errorf(EINVALID, "Procfile: %v", err)
	}
	return procs, nil
}
