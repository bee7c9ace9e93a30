package sshd

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dkhq/dk"
)

// processCommands are the formation and health check commands.
func processCommands() []*command {
	return []*command{
		{name: "ps:scale", args: "APP [TYPE=N…]", help: "show or set how many containers each process type runs", flags: map[string]bool{"json": false}, min: 1, max: -1, run: cmdPsScale},
		{name: "checks:set", args: "APP [path=/up] [timeout=30s] [interval=1s] [attempts=N] | APP --unset", help: "set the web health check a deploy waits for", flags: map[string]bool{"unset": false}, min: 1, max: -1, run: cmdChecksSet},
		{name: "checks:report", args: "APP", help: "show the health check in force and where each part comes from", flags: map[string]bool{"json": false}, min: 1, max: 1, run: cmdChecksReport},
	}
}

func cmdPsScale(c *call) error {
	app, err := c.app()
	if err != nil {
		return err
	}
	if len(c.args) == 1 {
		cur, err := c.s.Service.Current(c.ctx, app.Name)
		if err != nil {
			return err
		}
		f := dk.Formation{}
		if cur != nil {
			for _, t := range cur.Processes.Types() {
				f[t] = app.Formation.Scale(t)
			}
		}
		if c.has("json") {
			return writeJSON(c.out, f)
		}
		for _, t := range sortedKeys(f) {
			fmt.Fprintf(c.out, "%s=%d\n", t, f[t])
		}
		return nil
	}
	scale := map[string]int{}
	for _, a := range c.args[1:] {
		t, n, ok := strings.Cut(a, "=")
		num, err := strconv.Atoi(n)
		if !ok || err != nil {
			return dk.Errorf(dk.EINVALID, "%q is not TYPE=N; usage: ps:scale %s web=2 worker=1", a, app.Name)
		}
		scale[t] = num
	}
	f, err := c.s.Service.Scale(c.ctx, app.Name, scale, c.key.Name, c.errw)
	if err != nil {
		return err
	}
	var parts []string
	for _, t := range sortedKeys(scale) {
		parts = append(parts, fmt.Sprintf("%s=%d", t, f[t]))
	}
	fmt.Fprintf(c.out, "Scaled %s: %s\n", app.Name, strings.Join(parts, " "))
	return nil
}

func cmdChecksSet(c *call) error {
	app, err := c.app()
	if err != nil {
		return err
	}
	if c.has("unset") {
		if len(c.args) > 1 {
			return dk.Errorf(dk.EINVALID, "checks:set --unset takes no settings")
		}
		if _, err := c.s.Service.SetChecks(c.ctx, app.Name, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "Health check of %s reset to defaults; applies from the next deploy or restart\n", app.Name)
		return nil
	}
	if len(c.args) == 1 {
		return dk.Errorf(dk.EINVALID, "nothing to set; usage: checks:set %s path=/up timeout=30s interval=1s attempts=10", app.Name)
	}
	h := dk.HealthCheck{}
	if app.Checks != nil {
		h = *app.Checks
	}
	for _, a := range c.args[1:] {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return dk.Errorf(dk.EINVALID, "%q is not KEY=VALUE (path, timeout, interval, attempts)", a)
		}
		switch k {
		case "path":
			h.Path = v
		case "timeout", "interval":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return dk.Errorf(dk.EINVALID, "%s=%q is not a duration like 30s or 500ms", k, v)
			}
			if k == "timeout" {
				h.Timeout = d
			} else {
				h.Interval = d
			}
		case "attempts":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return dk.Errorf(dk.EINVALID, "attempts=%q is not a positive number", v)
			}
			h.Attempts = n
		default:
			return dk.Errorf(dk.EINVALID, "unknown check setting %q: use path, timeout, interval or attempts", k)
		}
	}
	updated, err := c.s.Service.SetChecks(c.ctx, app.Name, &h)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "Health check of %s set; applies from the next deploy or restart: %s\n", app.Name,
		formatCheck(*updated.Checks))
	return nil
}

func formatCheck(h dk.HealthCheck) string {
	var parts []string
	if h.Path != "" {
		parts = append(parts, "path="+h.Path)
	}
	if h.Timeout > 0 {
		parts = append(parts, "timeout="+h.Timeout.String())
	}
	if h.Interval > 0 {
		parts = append(parts, "interval="+h.Interval.String())
	}
	if h.Attempts > 0 {
		parts = append(parts, "attempts="+strconv.Itoa(h.Attempts))
	}
	return strings.Join(parts, " ")
}

func cmdChecksReport(c *call) error {
	app, err := c.app()
	if err != nil {
		return err
	}
	cur, err := c.s.Service.Current(c.ctx, app.Name)
	if err != nil {
		return err
	}
	var repo dk.HealthCheck
	if cur != nil {
		repo = cur.Checks
	}
	eff := repo.Overlay(app.Checks).WithDefaults(0)
	type source struct {
		Value  string `json:"value"`
		Source string `json:"source"`
	}
	from := func(set, inRepo bool) string {
		switch {
		case set:
			return "checks:set"
		case inRepo:
			return "app.json"
		}
		return "default"
	}
	s := app.Checks
	if s == nil {
		s = &dk.HealthCheck{}
	}
	path := eff.Path
	if path == "" {
		path = "(none: TCP connect to $PORT)"
	}
	attempts := "unlimited (until timeout)"
	if eff.Attempts > 0 {
		attempts = strconv.Itoa(eff.Attempts)
	}
	rows := map[string]source{
		"path":     {path, from(s.Path != "", repo.Path != "")},
		"timeout":  {eff.Timeout.String(), from(s.Timeout > 0, repo.Timeout > 0)},
		"interval": {eff.Interval.String(), from(s.Interval > 0, repo.Interval > 0)},
		"attempts": {attempts, from(s.Attempts > 0, repo.Attempts > 0)},
	}
	if c.has("json") {
		return writeJSON(c.out, rows)
	}
	keys := []string{"path", "timeout", "interval", "attempts"}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Health check of %s (web):\n", app.Name)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s:\t%s\t(%s)\n", k, rows[k].Value, rows[k].Source)
	}
	return tw.Flush()
}
