package dashboard

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dkhq/dk"
	"github.com/go-chi/chi/v5"
)

// App states on the overview.
const (
	StateRunning      = "running"
	StateDeploying    = "deploying"
	StateFailed       = "failed"
	StateCrashLooping = "crash-looping"
	StateStopped      = "stopped"
)

type procCount struct {
	Type          string
	Running, Want int
}

type appRow struct {
	Name       string
	Release    string // vN of the current release, "" without one
	State      string
	Note       string
	URL        string
	Procs      []procCount
	LastDeploy time.Time
}

type overviewView struct {
	view
	Apps []appRow
	Now  time.Time
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	key := keyOf(r)
	apps, err := s.Store.Apps(ctx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// One container listing for every app, not one per app.
	all, err := s.Containers.Containers(ctx, "")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	byApp := map[string][]dk.Container{}
	for _, c := range all {
		byApp[c.App] = append(byApp[c.App], c)
	}
	rows := make([]appRow, 0, len(apps))
	for _, a := range apps {
		if !s.canView(key, a.Name) {
			continue
		}
		newest, cur, err := s.Store.ReleaseHeads(ctx, a.Name)
		if err != nil {
			if dk.ErrorCode(err) == dk.ENOTFOUND {
				continue // destroyed meanwhile
			}
			s.fail(w, r, err)
			return
		}
		rows = append(rows, s.appRow(a, newest, cur, byApp[a.Name]))
	}
	s.render(w, http.StatusOK, "overview", overviewView{view: viewFor(r, "Apps"), Apps: rows, Now: s.now()})
}

func current(rels []*dk.Release) *dk.Release {
	for _, r := range rels {
		if r.Status == dk.ReleaseSucceeded {
			return r
		}
	}
	return nil
}

// appRow sums an app up from its newest and current releases (either may
// be nil) and its containers.
func (s *Server) appRow(a *dk.App, newest, cur *dk.Release, cs []dk.Container) appRow {
	row := appRow{Name: a.Name}
	if s.AppURL != nil {
		row.URL = s.AppURL(a.Name)
	}
	if newest != nil {
		row.LastDeploy = newest.CreatedAt
	}
	crashing, running := false, 0
	if cur != nil {
		row.Release = cur.Name()
		for _, t := range cur.Processes.Types() {
			pc := procCount{Type: t, Want: a.Formation.Scale(t)}
			for _, c := range cs {
				if c.Release != cur.Version || c.Process != t {
					continue
				}
				switch c.State {
				case "running":
					pc.Running++
				case "restarting", "crash-looping", "crashed":
					crashing = true
				}
			}
			running += pc.Running
			row.Procs = append(row.Procs, pc)
		}
	}
	lastFailed := newest != nil && newest.Status == dk.ReleaseFailed
	_, _, locked := s.Manager.LockHolder(a.Name)
	switch {
	case locked || newest != nil && newest.Status == dk.ReleasePending:
		row.State = StateDeploying
	case crashing:
		row.State = StateCrashLooping
	case cur != nil && running > 0:
		row.State = StateRunning
		if lastFailed {
			row.Note = "last deploy failed: " + newest.Name() + " " + newest.Error
		}
	case lastFailed:
		row.State = StateFailed
		row.Note = newest.Error
	default:
		row.State = StateStopped
	}
	return row
}

type releaseRow struct {
	*dk.Release
	Current bool
	Timings string
}

type procRow struct {
	dk.Container
	Name    string
	Uptime  time.Duration
	ShortID string
}

type configKey struct {
	Layer, Key string
}

type appView struct {
	view
	appRow
	Holder      string
	HolderSince time.Time
	Releases    []releaseRow
	Processes   []procRow
	Config      []configKey
	Builds      []*dk.Build
	LatestBuild *dk.Build
	LatestLog   string
	RecentLogs  string
	Now         time.Time
}

// maxReleases is how many releases the app page lists.
const maxReleases = 50

// app loads the app named in the path, if the session may see it. An app
// the key may not see is "not found", like one that does not exist.
func (s *Server) app(r *http.Request) (*dk.App, error) {
	name := chi.URLParam(r, "app")
	if err := dk.ValidateAppName(name); err != nil {
		return nil, dk.Errorf(dk.ENOTFOUND, "app %q not found", name)
	}
	if !s.canView(keyOf(r), name) {
		return nil, dk.Errorf(dk.ENOTFOUND, "app %q not found", name)
	}
	return s.Store.App(r.Context(), name)
}

func (s *Server) appPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, err := s.app(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rels, err := s.Store.Releases(ctx, a.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	procs, err := s.Manager.Processes(ctx, a.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.now()
	cur := current(rels)
	var newest *dk.Release
	if len(rels) > 0 {
		newest = rels[0]
	}
	v := appView{view: viewFor(r, a.Name), appRow: s.appRow(a, newest, cur, procs), Now: now}
	v.Holder, v.HolderSince, _ = s.Manager.LockHolder(a.Name)
	for i, rel := range rels {
		if i == maxReleases {
			break
		}
		v.Releases = append(v.Releases, releaseRow{Release: rel, Current: rel == cur, Timings: timings(rel.Timings)})
	}
	sort.Slice(procs, func(i, j int) bool {
		if procs[i].Process != procs[j].Process {
			return procs[i].Process < procs[j].Process
		}
		return procs[i].Index < procs[j].Index
	})
	for _, c := range procs {
		p := procRow{Container: c, Name: c.Process + "." + strconv.Itoa(c.Index), ShortID: c.ID}
		if len(p.ShortID) > 12 {
			p.ShortID = p.ShortID[:12]
		}
		if c.State == "running" && !c.StartedAt.IsZero() {
			p.Uptime = now.Sub(c.StartedAt)
		}
		v.Processes = append(v.Processes, p)
	}
	// Config: keys only. Values never leave the server.
	for _, k := range a.Config.Keys() {
		v.Config = append(v.Config, configKey{Layer: "app", Key: k})
	}
	procTypes := make([]string, 0, len(a.ProcessConfig))
	for t := range a.ProcessConfig {
		procTypes = append(procTypes, t)
	}
	sort.Strings(procTypes)
	for _, t := range procTypes {
		for _, k := range a.ProcessConfig[t].Keys() {
			v.Config = append(v.Config, configKey{Layer: t, Key: k})
		}
	}
	if s.Builds != nil {
		if v.Builds, err = s.Builds.Builds(ctx, a.Name); err != nil {
			s.fail(w, r, err)
			return
		}
		if len(v.Builds) > 0 {
			b, err := s.Builds.BuildLog(ctx, a.Name, v.Builds[0].Number)
			if err != nil && dk.ErrorCode(err) != dk.ENOTFOUND {
				s.fail(w, r, err)
				return
			}
			if b != nil {
				v.LatestBuild, v.LatestLog = b, string(b.Log)
			}
		}
	}
	// The last lines, for readers without JavaScript; the live tail adds
	// what comes next.
	var logs bytes.Buffer
	if err := s.Manager.Logs(ctx, a.Name, 100, false, &logs); err != nil && dk.ErrorCode(err) != dk.ENOTFOUND {
		s.logger().Warn("dashboard logs", "app", a.Name, "err", err)
	}
	v.RecentLogs = logs.String()
	s.render(w, http.StatusOK, "app", v)
}

type buildView struct {
	view
	App   string
	Build *dk.Build
	Log   string
}

func (s *Server) buildPage(w http.ResponseWriter, r *http.Request) {
	a, err := s.app(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n, err := strconv.Atoi(chi.URLParam(r, "n"))
	if err != nil || n < 1 || s.Builds == nil {
		s.fail(w, r, dk.Errorf(dk.ENOTFOUND, "build %q of %q not found", chi.URLParam(r, "n"), a.Name))
		return
	}
	b, err := s.Builds.BuildLog(r.Context(), a.Name, n)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, http.StatusOK, "build", buildView{view: viewFor(r, fmt.Sprintf("%s build %d", a.Name, n)), App: a.Name, Build: b, Log: string(b.Log)})
}

func timings(ts []dk.Timing) string {
	parts := make([]string, 0, len(ts))
	for _, t := range ts {
		parts = append(parts, t.Stage+" "+dur(t.Duration))
	}
	return strings.Join(parts, ", ")
}
