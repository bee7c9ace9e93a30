package dashboard_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dkhq/dk"
)

// restarting reports every container of one app as Docker does for a
// crash loop.
type restarting struct {
	dashboardContainers
	app string
}

type dashboardContainers interface {
	Containers(ctx context.Context, app string) ([]dk.Container, error)
}

func (r restarting) Containers(ctx context.Context, app string) ([]dk.Container, error) {
	cs, err := r.dashboardContainers.Containers(ctx, app)
	for i := range cs {
		if cs[i].App == r.app {
			cs[i].State = "restarting"
		}
	}
	return cs, err
}

func TestOverviewStates(t *testing.T) {
	// row returns the overview's table row of app.
	row := func(t *testing.T, e *env, cookie, app string) string {
		t.Helper()
		body := e.do(t, "GET", "/", cookie).body
		i := strings.Index(body, `<a href="/apps/`+app+`">`)
		if i < 0 {
			t.Fatalf("%s is not on the overview", app)
		}
		end := strings.Index(body[i:], "</tr>")
		return body[i : i+end]
	}
	t.Run("Running", func(t *testing.T) {
		e := newEnv(t)
		mustContain(t, "hello", row(t, e, e.login(t, admin), "hello"), "state-running", "web 1/1")
	})
	t.Run("Deploying", func(t *testing.T) {
		e := newEnv(t)
		lock, err := e.mgr.TryLock("hello", "push by alice")
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Unlock()
		mustContain(t, "hello", row(t, e, e.login(t, admin), "hello"), "state-deploying")
	})
	t.Run("CrashLooping", func(t *testing.T) {
		e := newEnv(t)
		e.dash.Containers = restarting{e.rt, "hello"}
		mustContain(t, "hello", row(t, e, e.login(t, admin), "hello"), "state-crash-looping", "web 0/1")
	})
	t.Run("Failed", func(t *testing.T) {
		e := newEnv(t)
		e.rt.Stop(context.Background(), e.web.ID, 0)
		mustContain(t, "hello", row(t, e, e.login(t, admin), "hello"), "state-failed", "web 0/1", "did not listen on port 5000")
	})
	t.Run("Stopped", func(t *testing.T) {
		e := newEnv(t)
		mustContain(t, "empty", row(t, e, e.login(t, admin), "empty"), "state-stopped", "never")
	})
}
