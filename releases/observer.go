package releases

import (
	"strings"
	"time"

	"github.com/dkhq/dk"
)

// Observer is told how deploys, builds and reconciler passes end (the
// metrics package implements it). Calls are made synchronously: keep them
// cheap.
type Observer interface {
	// DeployFinished: kind is deploy, config or rollback; outcome is
	// succeeded or failed; d runs from the start of the deploy (for a push,
	// including its build).
	DeployFinished(app, kind, outcome string, d time.Duration)
	// BuildFinished: outcome is succeeded or failed.
	BuildFinished(app, outcome string, d time.Duration)
	// ReconcilePass is one reconciler pass over one app; err is its error.
	ReconcilePass(err error)
}

// Outcomes reported to an Observer.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
)

func outcome(err error) string {
	if err != nil {
		return OutcomeFailed
	}
	return OutcomeSucceeded
}

func (m *Manager) observeDeploy(app, kind string, d time.Duration, err error) {
	if m.Observer != nil {
		m.Observer.DeployFinished(app, kind, outcome(err), d)
	}
}

func (m *Manager) observeBuild(app string, d time.Duration, err error) {
	if m.Observer != nil {
		m.Observer.BuildFinished(app, outcome(err), d)
	}
}

func (m *Manager) observeReconcile(err error) {
	if m.Observer != nil {
		m.Observer.ReconcilePass(err)
	}
}

// releaseKind tells what made a release, from the description the manager
// gave it.
func releaseKind(rel *dk.Release) string {
	switch {
	case strings.HasPrefix(rel.Description, "Deploy "):
		return "deploy"
	case strings.HasPrefix(rel.Description, "Rollback to "):
		return "rollback"
	default:
		return "config"
	}
}
