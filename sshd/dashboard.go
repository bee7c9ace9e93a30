package sshd

import (
	"context"
	"fmt"

	"github.com/dkhq/dk"
)

// Dashboard makes one-time login links to the web dashboard.
type Dashboard interface {
	LoginURL(ctx context.Context, key *dk.Key) (string, error)
}

func (s *Server) dashboardCommands() []*command {
	return []*command{
		{name: "dashboard:url", help: "print a one-time login link to the web dashboard (valid 5 minutes)", run: cmdDashboardURL},
	}
}

func cmdDashboardURL(c *call) error {
	if c.s.Dashboard == nil {
		return dk.Errorf(dk.EINVALID, "the dashboard is off on this dk (dkd serve --dashboard-addr)")
	}
	u, err := c.s.Dashboard.LoginURL(c.ctx, c.key)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.out, u)
	fmt.Fprintln(c.errw, "Open it within 5 minutes; it works once and signs you in as "+c.key.Name+".")
	return nil
}
