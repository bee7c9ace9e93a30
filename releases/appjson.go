package releases

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dkhq/dk"
)

// appJSON is the part of an app.json dk reads: the web process's health
// check, in seconds.
//
//	{"healthchecks": {"web": {"path": "/up", "timeout": 30, "interval": 1, "attempts": 10}}}
type appJSON struct {
	Healthchecks map[string]struct {
		Path     string  `json:"path"`
		Timeout  float64 `json:"timeout"`
		Interval float64 `json:"interval"`
		Attempts int     `json:"attempts"`
	} `json:"healthchecks"`
}

// readAppJSON returns the web health check declared in dir/app.json (zero
// when there is none).
func readAppJSON(dir string) (dk.HealthCheck, error) {
	b, err := os.ReadFile(filepath.Join(dir, "app.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return dk.HealthCheck{}, nil
	}
	if err != nil {
		return dk.HealthCheck{}, dk.Errorf(dk.EINVALID, "app.json: %v", err)
	}
	var a appJSON
	if err := json.Unmarshal(b, &a); err != nil {
		return dk.HealthCheck{}, dk.Errorf(dk.EINVALID, "app.json is not valid JSON: %v", err)
	}
	w, ok := a.Healthchecks["web"]
	if !ok {
		return dk.HealthCheck{}, nil
	}
	h := dk.HealthCheck{Path: w.Path, Timeout: seconds(w.Timeout), Interval: seconds(w.Interval), Attempts: w.Attempts}
	if err := ValidateCheck(h); err != nil {
		return dk.HealthCheck{}, dk.Errorf(dk.EINVALID, "app.json healthchecks.web: %s", dk.ErrorMessage(err))
	}
	return h, nil
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// ValidateCheck checks a health check's fields.
func ValidateCheck(h dk.HealthCheck) error {
	if h.Path != "" && (h.Path[0] != '/' || len(h.Path) > 1024) {
		return dk.Errorf(dk.EINVALID, "path %q must start with /", h.Path)
	}
	if h.Timeout < 0 || h.Timeout > time.Hour {
		return dk.Errorf(dk.EINVALID, "timeout %s must be between 1s and 1h", h.Timeout)
	}
	if h.Interval < 0 || h.Interval > 10*time.Minute {
		return dk.Errorf(dk.EINVALID, "interval %s must be between 10ms and 10m", h.Interval)
	}
	if h.Attempts < 0 || h.Attempts > 10000 {
		return dk.Errorf(dk.EINVALID, "attempts %d must be between 1 and 10000", h.Attempts)
	}
	return nil
}
