package sshd_test

import (
	"strings"
	"testing"
)

func TestDashboardURLOff(t *testing.T) {
	s := startServer(t) // no Dashboard wired
	_, errOut, code, err := s.run(t, s.admin, "dashboard:url", "")
	if err != nil || code != 2 || !strings.Contains(errOut, "the dashboard is off on this dk") {
		t.Errorf("dashboard:url without a dashboard: %d %q %v", code, errOut, err)
	}
	out, _, _, _ := s.run(t, s.admin, "help", "")
	if !strings.Contains(out, "dashboard:url") {
		t.Errorf("help does not list dashboard:url:\n%s", out)
	}
}
