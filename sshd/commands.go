package sshd

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dkhq/dk"
	"github.com/gliderlabs/ssh"
	"github.com/kballard/go-shellquote"
	gossh "golang.org/x/crypto/ssh"
)

// command is one SSH command.
type command struct {
	name  string
	args  string // usage after the name
	help  string
	admin bool            // needs an admin key
	flags map[string]bool // flag name → takes a value
	min   int             // minimum positional args
	max   int             // maximum positional args (-1: any)
	run   func(c *call) error
}

// call is one invocation of a command.
type call struct {
	s     *Server
	ctx   context.Context
	sess  ssh.Session
	key   *dk.Key
	args  []string
	flags map[string]string
	out   io.Writer
	errw  io.Writer
}

func (c *call) has(flag string) bool { _, ok := c.flags[flag]; return ok }

// commands is the command table: the core commands below, then each
// feature's own (defined in its own file).
func (s *Server) commands() []*command {
	cmds := coreCommands()
	cmds = append(cmds, s.featureCommands()...)
	return cmds
}

func coreCommands() []*command {
	return []*command{
		{name: "help", help: "show this help", max: -1, run: cmdHelp},
		{name: "version", help: "show dk's version", run: func(c *call) error {
			fmt.Fprintf(c.out, "dk %s\n", dk.Version)
			return nil
		}},
		{name: "apps", help: "list apps", flags: map[string]bool{"json": false}, run: cmdApps},
		{name: "apps:create", args: "APP", help: "create an app (a first git push also does)", admin: true, min: 1, max: 1, run: cmdAppsCreate},
		{name: "apps:info", args: "APP", help: "show an app's release, URL and processes", flags: map[string]bool{"json": false}, min: 1, max: 1, run: cmdAppsInfo},
		{name: "apps:destroy", args: "APP --force", help: "stop and delete an app, its releases and images", admin: true, flags: map[string]bool{"force": false}, min: 1, max: 1, run: cmdAppsDestroy},
		{name: "config", args: "APP [--process TYPE] | --global", help: "show config", flags: map[string]bool{"json": false, "global": false, "process": true}, max: 1, run: cmdConfig},
		{name: "config:get", args: "APP KEY | --global KEY", help: "print one config value", flags: map[string]bool{"global": false}, min: 1, max: 2, run: cmdConfigGet},
		{name: "config:set", args: "APP KEY=VALUE… [--process TYPE] [--no-restart] [--encoded] | --global KEY=VALUE…", help: "set config; makes a new release and restarts", flags: map[string]bool{"no-restart": false, "encoded": false, "global": false, "process": true}, min: 1, max: -1, run: cmdConfigSet},
		{name: "config:unset", args: "APP KEY… [--process TYPE] [--no-restart] | --global KEY…", help: "remove config; makes a new release and restarts", flags: map[string]bool{"no-restart": false, "global": false, "process": true}, min: 1, max: -1, run: cmdConfigUnset},
		{name: "releases", args: "APP", help: "list releases, newest first", flags: map[string]bool{"json": false}, min: 1, max: 1, run: cmdReleases},
		{name: "releases:info", args: "APP vN", help: "show one release", flags: map[string]bool{"json": false}, min: 2, max: 2, run: cmdReleasesInfo},
		{name: "rollback", args: "APP [vN]", help: "release an earlier release's image and config again (default: the previous one)", min: 1, max: 2, run: cmdRollback},
		{name: "ps", args: "APP", help: "list an app's processes", flags: map[string]bool{"json": false}, min: 1, max: 1, run: cmdPs},
		{name: "ps:restart", args: "APP", help: "restart an app's processes without downtime", min: 1, max: 1, run: cmdPsRestart},
		{name: "logs", args: "APP [-t] [-n N]", help: "show an app's output; -t follows", flags: map[string]bool{"t": false, "tail": false, "n": true, "num": true}, min: 1, max: 1, run: cmdLogs},
		{name: "keys", help: "list SSH keys", flags: map[string]bool{"json": false}, admin: true, run: cmdKeys},
		{name: "keys:add", args: "NAME [--admin] < key.pub", help: "add an SSH public key read from stdin", admin: true, flags: map[string]bool{"admin": false}, min: 1, max: 1, run: cmdKeysAdd},
		{name: "keys:remove", args: "NAME", help: "remove an SSH key", admin: true, min: 1, max: 1, run: cmdKeysRemove},
	}
}

// run executes a raw command line and returns the exit status.
func (s *Server) run(ctx context.Context, sess ssh.Session, key *dk.Key, raw string, log *slog.Logger) int {
	words, err := shellquote.Split(raw)
	if err != nil {
		fmt.Fprintf(sess.Stderr(), " !     cannot parse command line: %v\n", err)
		return 2
	}
	if len(words) == 0 {
		words = []string{"help"}
	}
	switch words[0] {
	case "git-receive-pack":
		return s.gitReceive(ctx, sess, key, words, log)
	case "git-upload-pack", "git-upload-archive":
		_ = s.Git.RejectPush(sess, "dk only receives pushes; fetch and clone from your own repository")
		return 1
	}
	var cmd *command
	for _, c := range s.commands() {
		if c.name == words[0] {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(sess.Stderr(), " !     unknown command %q\n\n", words[0])
		s.usage(sess.Stderr(), key)
		return 2
	}
	c := &call{s: s, ctx: ctx, sess: sess, key: key, out: sess, errw: sess.Stderr()}
	if err := c.parse(cmd, words[1:]); err != nil {
		return fail(c.errw, err, log)
	}
	if cmd.admin && !key.Admin {
		return fail(c.errw, dk.Errorf(dk.EFORBIDDEN, "%s needs an admin key", cmd.name), log)
	}
	if err := cmd.run(c); err != nil {
		return fail(c.errw, err, log)
	}
	return 0
}

// fail prints err as one line and returns the exit status for its code.
func fail(w io.Writer, err error, log *slog.Logger) int {
	if dk.ErrorCode(err) == dk.EINTERNAL {
		log.Error("command failed", "err", err)
	}
	fmt.Fprintf(w, " !     %s\n", dk.ErrorMessage(err))
	if dk.ErrorCode(err) == dk.EINVALID {
		return 2
	}
	return 1
}

// parse splits words into flags and positionals for cmd.
func (c *call) parse(cmd *command, words []string) error {
	c.flags = map[string]string{}
	usage := func(format string, args ...any) error {
		return dk.Errorf(dk.EINVALID, "%s; usage: %s %s", fmt.Sprintf(format, args...), cmd.name, cmd.args)
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "--" {
			c.args = append(c.args, words[i+1:]...)
			break
		}
		if len(w) < 2 || w[0] != '-' || (w[1] >= '0' && w[1] <= '9') {
			c.args = append(c.args, w)
			continue
		}
		flag := strings.TrimPrefix(w, "-")
		if strings.HasPrefix(flag, "-") {
			flag = flag[1:]
		}
		name, val, hasVal := strings.Cut(flag, "=")
		takes, ok := cmd.flags[name]
		if !ok {
			return usage("unknown flag %s", w)
		}
		if takes && !hasVal {
			if i+1 >= len(words) {
				return usage("flag %s needs a value", w)
			}
			i++
			val = words[i]
		} else if !takes && hasVal {
			return usage("flag --%s takes no value", name)
		}
		c.flags[name] = val
	}
	min := cmd.min
	if c.has("global") && min > 0 {
		min-- // --global replaces APP
	}
	if len(c.args) < min {
		return usage("missing arguments")
	}
	if cmd.max >= 0 && len(c.args) > cmd.max {
		return usage("too many arguments")
	}
	return nil
}

func (s *Server) usage(w io.Writer, key *dk.Key) {
	fmt.Fprintf(w, "Usage: ssh dk COMMAND [ARGS]   (dk %s)\n\nCommands:\n", dk.Version)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range s.commands() {
		if c.admin && !key.Admin {
			continue
		}
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.help)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nDeploy: git remote add dk %s && git push dk main\n", s.pushURL("APP"))
}

func (s *Server) pushURL(app string) string {
	if s.PushURL != nil {
		return s.PushURL(app)
	}
	return app
}

func cmdHelp(c *call) error {
	c.s.usage(c.out, c.key)
	return nil
}

// app loads the app named by the first argument.
func (c *call) app() (*dk.App, error) {
	if err := dk.ValidateAppName(c.args[0]); err != nil {
		return nil, err
	}
	return c.s.Store.App(c.ctx, c.args[0])
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdApps(c *call) error {
	apps, err := c.s.Store.Apps(c.ctx)
	if err != nil {
		return err
	}
	type row struct {
		Name    string `json:"name"`
		Release *int   `json:"release"`
	}
	rows := []row{}
	for _, a := range apps {
		r := row{Name: a.Name}
		if cur, err := c.s.Service.Current(c.ctx, a.Name); err == nil && cur != nil {
			v := cur.Version
			r.Release = &v
		}
		rows = append(rows, r)
	}
	if c.has("json") {
		return writeJSON(c.out, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(c.out, "No apps yet. Deploy one: git push %s main\n", c.s.pushURL("APP"))
		return nil
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tRELEASE")
	for _, r := range rows {
		rel := "-"
		if r.Release != nil {
			rel = "v" + strconv.Itoa(*r.Release)
		}
		fmt.Fprintf(tw, "%s\t%s\n", r.Name, rel)
	}
	return tw.Flush()
}

func cmdAppsCreate(c *call) error {
	app, err := c.s.Service.CreateApp(c.ctx, c.args[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "Created %s. Deploy it: git remote add dk %s && git push dk main\n", app.Name, c.s.pushURL(app.Name))
	return nil
}

func cmdAppsInfo(c *call) error {
	app, err := c.app()
	if err != nil {
		return err
	}
	cur, err := c.s.Service.Current(c.ctx, app.Name)
	if err != nil {
		return err
	}
	procs, err := c.s.Service.Processes(c.ctx, app.Name)
	if err != nil {
		return err
	}
	holder, since, locked := c.s.Service.LockHolder(app.Name)
	type info struct {
		Name      string       `json:"name"`
		CreatedAt time.Time    `json:"created_at"`
		Release   *int         `json:"release"`
		Commit    string       `json:"commit,omitempty"`
		Image     string       `json:"image,omitempty"`
		GitURL    string       `json:"git_url"`
		Formation dk.Formation `json:"formation"`
		Processes []psRow      `json:"processes"`
		Lock      *lockInfo    `json:"lock,omitempty"`
	}
	in := info{Name: app.Name, CreatedAt: app.CreatedAt, GitURL: c.s.pushURL(app.Name), Formation: dk.Formation{}, Processes: psRows(procs)}
	if cur != nil {
		v := cur.Version
		in.Release, in.Commit, in.Image = &v, cur.Commit, cur.Image
		for _, t := range cur.Processes.Types() {
			in.Formation[t] = app.Formation.Scale(t)
		}
	}
	if locked {
		in.Lock = &lockInfo{Holder: holder, Since: since}
	}
	if c.has("json") {
		return writeJSON(c.out, in)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "App:\t%s\n", app.Name)
	fmt.Fprintf(tw, "Created:\t%s\n", app.CreatedAt.Format(time.RFC3339))
	if cur != nil {
		fmt.Fprintf(tw, "Release:\t%s (%s)\n", cur.Name(), cur.Description)
		fmt.Fprintf(tw, "Image:\t%s\n", cur.Image)
	} else {
		fmt.Fprintf(tw, "Release:\tnone yet\n")
	}
	fmt.Fprintf(tw, "Git URL:\t%s\n", in.GitURL)
	var form []string
	for _, t := range sortedKeys(in.Formation) {
		form = append(form, fmt.Sprintf("%s=%d", t, in.Formation[t]))
	}
	fmt.Fprintf(tw, "Formation:\t%s\n", strings.Join(form, " "))
	fmt.Fprintf(tw, "Processes:\t%d running of %d\n", countRunning(procs), len(procs))
	if locked {
		fmt.Fprintf(tw, "Locked:\t%s since %s\n", holder, since.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

type lockInfo struct {
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
}

func countRunning(cs []dk.Container) int {
	n := 0
	for _, c := range cs {
		if c.State == "running" {
			n++
		}
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func cmdAppsDestroy(c *call) error {
	app, err := c.app()
	if err != nil {
		return err
	}
	if !c.has("force") {
		return dk.Errorf(dk.EINVALID, "this deletes %s, its releases, config and images; to confirm: apps:destroy %s --force", app.Name, app.Name)
	}
	if err := c.s.Service.DestroyApp(c.ctx, app.Name, "destroy by "+c.key.Name); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "Destroyed %s\n", app.Name)
	return nil
}

func cmdConfig(c *call) error {
	var cfg dk.Config
	if c.has("global") {
		if len(c.args) > 0 {
			return dk.Errorf(dk.EINVALID, "config --global takes no app")
		}
		g, err := c.s.Store.GlobalConfig(c.ctx)
		if err != nil {
			return err
		}
		cfg = g
	} else {
		if len(c.args) == 0 {
			return dk.Errorf(dk.EINVALID, "missing arguments; usage: config APP | config --global")
		}
		app, err := c.app()
		if err != nil {
			return err
		}
		cfg = app.Config
		if p, ok := c.flags["process"]; ok {
			cfg = app.ProcessConfig[p]
		}
	}
	if cfg == nil {
		cfg = dk.Config{}
	}
	if c.has("json") {
		return writeJSON(c.out, map[string]string(cfg))
	}
	for _, k := range cfg.Keys() {
		fmt.Fprintf(c.out, "%s=%s\n", k, shellquote.Join(cfg[k]))
	}
	return nil
}

func cmdConfigGet(c *call) error {
	var cfg dk.Config
	var key string
	if c.has("global") {
		if len(c.args) != 1 {
			return dk.Errorf(dk.EINVALID, "usage: config:get --global KEY")
		}
		g, err := c.s.Store.GlobalConfig(c.ctx)
		if err != nil {
			return err
		}
		cfg, key = g, c.args[0]
	} else {
		if len(c.args) != 2 {
			return dk.Errorf(dk.EINVALID, "usage: config:get APP KEY")
		}
		app, err := c.app()
		if err != nil {
			return err
		}
		cfg, key = app.Config, c.args[1]
	}
	if err := dk.ValidateConfigKey(key); err != nil {
		return err
	}
	v, ok := cfg[key]
	if !ok {
		return dk.Errorf(dk.ENOTFOUND, "%s is not set", key)
	}
	fmt.Fprintln(c.out, v)
	return nil
}

// target returns the app a config command applies to ("" for --global) and
// the remaining arguments.
func (c *call) target() (string, []string, error) {
	if c.has("global") {
		if !c.key.Admin {
			return "", nil, dk.Errorf(dk.EFORBIDDEN, "global config needs an admin key")
		}
		return "", c.args, nil
	}
	app, err := c.app()
	if err != nil {
		return "", nil, err
	}
	return app.Name, c.args[1:], nil
}

func cmdConfigSet(c *call) error {
	app, pairs, err := c.target()
	if err != nil {
		return err
	}
	if len(pairs) == 0 {
		return dk.Errorf(dk.EINVALID, "nothing to set; usage: config:set APP KEY=VALUE…")
	}
	set := dk.Config{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return dk.Errorf(dk.EINVALID, "%q is not KEY=VALUE; quote values with spaces: config:set APP KEY='a b'", p)
		}
		if err := dk.ValidateConfigKey(k); err != nil {
			return err
		}
		if c.has("encoded") {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return dk.Errorf(dk.EINVALID, "value of %s is not base64 (--encoded): %v", k, err)
			}
			v = string(b)
		}
		set[k] = v
	}
	return c.changeConfig(app, dk.ConfigChange{App: app, Process: c.flags["process"], Set: set})
}

func cmdConfigUnset(c *call) error {
	app, keys, err := c.target()
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return dk.Errorf(dk.EINVALID, "nothing to unset; usage: config:unset APP KEY…")
	}
	for _, k := range keys {
		if err := dk.ValidateConfigKey(k); err != nil {
			return err
		}
	}
	return c.changeConfig(app, dk.ConfigChange{App: app, Process: c.flags["process"], Unset: keys})
}

func (c *call) changeConfig(app string, ch dk.ConfigChange) error {
	if app == "" && ch.Process != "" {
		return dk.Errorf(dk.EINVALID, "--process and --global do not go together")
	}
	ch.Restart = !c.has("no-restart")
	ch.Author = c.key.Name
	ch.Output = c.errw
	if app == "" {
		rels, err := c.s.Service.SetGlobalConfig(c.ctx, ch)
		for _, r := range rels {
			fmt.Fprintf(c.out, "%s: released %s\n", r.App, r.Name())
		}
		if err != nil {
			return err
		}
		if !ch.Restart {
			fmt.Fprintln(c.out, "Global config saved; each app gets it with its next release")
		}
		return nil
	}
	rel, err := c.s.Service.SetConfig(c.ctx, ch)
	if err != nil {
		return err
	}
	switch {
	case rel != nil:
		fmt.Fprintf(c.out, "Released %s: %s\n", rel.Name(), rel.Description)
	case !ch.Restart:
		fmt.Fprintln(c.out, "Config saved; it takes effect with the next release (--no-restart)")
	default:
		fmt.Fprintln(c.out, "Config saved; it takes effect with the first deploy")
	}
	return nil
}

type releaseRow struct {
	Version     int         `json:"version"`
	Description string      `json:"description"`
	Image       string      `json:"image"`
	Commit      string      `json:"commit,omitempty"`
	Status      string      `json:"status"`
	Current     bool        `json:"current"`
	Author      string      `json:"author,omitempty"`
	Error       string      `json:"error,omitempty"`
	CreatedAt   time.Time   `json:"created_at"`
	Timings     []dk.Timing `json:"timings,omitempty"`
}

func releaseRows(rels []*dk.Release) []releaseRow {
	rows := []releaseRow{}
	cur := 0
	for _, r := range rels {
		if cur == 0 && r.Status == dk.ReleaseSucceeded {
			cur = r.Version
		}
	}
	for _, r := range rels {
		rows = append(rows, releaseRow{Version: r.Version, Description: r.Description, Image: r.Image, Commit: r.Commit,
			Status: r.Status, Current: r.Version == cur, Author: r.Author, Error: r.Error, CreatedAt: r.CreatedAt, Timings: r.Timings})
	}
	return rows
}

func cmdReleases(c *call) error {
	app, err := c.app()
	if err != nil {
		return err
	}
	rels, err := c.s.Store.Releases(c.ctx, app.Name)
	if err != nil {
		return err
	}
	rows := releaseRows(rels)
	if c.has("json") {
		return writeJSON(c.out, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(c.out, "%s has no releases yet. Deploy: git push %s main\n", app.Name, c.s.pushURL(app.Name))
		return nil
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tDESCRIPTION\tSTATUS\tBY\tCREATED")
	for _, r := range rows {
		status := r.Status
		if r.Current {
			status = "current"
		}
		fmt.Fprintf(tw, "v%d\t%s\t%s\t%s\t%s\n", r.Version, r.Description, status, r.Author, r.CreatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func parseVersion(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(s, "v"), "V"))
	if err != nil || n < 1 {
		return 0, dk.Errorf(dk.EINVALID, "%q is not a release: use vN, e.g. v3 (see: releases APP)", s)
	}
	return n, nil
}

func cmdReleasesInfo(c *call) error {
	app, err := c.app()
	if err != nil {
		return err
	}
	v, err := parseVersion(c.args[1])
	if err != nil {
		return err
	}
	rel, err := c.s.Store.Release(c.ctx, app.Name, v)
	if err != nil {
		return err
	}
	rels, err := c.s.Store.Releases(c.ctx, app.Name)
	if err != nil {
		return err
	}
	var row releaseRow
	for _, r := range releaseRows(rels) {
		if r.Version == rel.Version {
			row = r
		}
	}
	if c.has("json") {
		return writeJSON(c.out, row)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Release:\tv%d\n", row.Version)
	fmt.Fprintf(tw, "Description:\t%s\n", row.Description)
	fmt.Fprintf(tw, "Status:\t%s\n", row.Status)
	if row.Error != "" {
		fmt.Fprintf(tw, "Error:\t%s\n", row.Error)
	}
	fmt.Fprintf(tw, "Image:\t%s\n", row.Image)
	if row.Commit != "" {
		fmt.Fprintf(tw, "Commit:\t%s\n", row.Commit)
	}
	fmt.Fprintf(tw, "By:\t%s\n", row.Author)
	fmt.Fprintf(tw, "Created:\t%s\n", row.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "Config keys:\t%s\n", strings.Join(dk.Merge(rel.Global, rel.Config).Keys(), " "))
	var procs []string
	for _, t := range rel.Processes.Types() {
		cmd := rel.Processes[t]
		if cmd == "" {
			cmd = "(image CMD)"
		}
		procs = append(procs, t+": "+cmd)
	}
	fmt.Fprintf(tw, "Processes:\t%s\n", strings.Join(procs, "; "))
	var ts []string
	for _, t := range row.Timings {
		ts = append(ts, fmt.Sprintf("%s %s", t.Stage, t.Duration.Round(time.Millisecond)))
	}
	if len(ts) > 0 {
		fmt.Fprintf(tw, "Timings:\t%s\n", strings.Join(ts, ", "))
	}
	return tw.Flush()
}

func cmdRollback(c *call) error {
	app, err := c.app()
	if err != nil {
		return err
	}
	v := 0
	if len(c.args) == 2 {
		if v, err = parseVersion(c.args[1]); err != nil {
			return err
		}
	}
	rel, err := c.s.Service.Rollback(c.ctx, app.Name, v, c.key.Name, c.errw)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "Released %s: %s\n", rel.Name(), rel.Description)
	return nil
}

type psRow struct {
	Process  string    `json:"process"`
	Index    int       `json:"index"`
	State    string    `json:"state"`
	Release  int       `json:"release"`
	Started  time.Time `json:"started_at"`
	Restarts int       `json:"restarts"`
	ExitCode int       `json:"exit_code"`
	ID       string    `json:"id"`
}

func psRows(cs []dk.Container) []psRow {
	rows := []psRow{}
	for _, c := range cs {
		id := c.ID
		if len(id) > 12 {
			id = id[:12]
		}
		rows = append(rows, psRow{Process: c.Process, Index: c.Index, State: c.State, Release: c.Release, Started: c.StartedAt,
			Restarts: c.Restarts, ExitCode: c.ExitCode, ID: id})
	}
	return rows
}

func cmdPs(c *call) error {
	app, err := c.app()
	if err != nil {
		return err
	}
	cs, err := c.s.Service.Processes(c.ctx, app.Name)
	if err != nil {
		return err
	}
	rows := psRows(cs)
	if c.has("json") {
		return writeJSON(c.out, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(c.out, "%s has no processes\n", app.Name)
		return nil
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROCESS\tSTATE\tRELEASE\tUPTIME\tRESTARTS\tCONTAINER")
	for _, r := range rows {
		up := "-"
		if r.State == "running" && !r.Started.IsZero() {
			up = time.Since(r.Started).Round(time.Second).String()
		}
		restarts := strconv.Itoa(r.Restarts)
		if r.Restarts > 0 || r.State != "running" {
			restarts += fmt.Sprintf(" (last exit %d)", r.ExitCode)
		}
		fmt.Fprintf(tw, "%s.%d\t%s\tv%d\t%s\t%s\t%s\n", r.Process, r.Index, r.State, r.Release, up, restarts, r.ID)
	}
	return tw.Flush()
}

func cmdPsRestart(c *call) error {
	app, err := c.app()
	if err != nil {
		return err
	}
	if err := c.s.Service.Restart(c.ctx, app.Name, c.key.Name, c.errw); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "Restarted %s\n", app.Name)
	return nil
}

func cmdLogs(c *call) error {
	app, err := c.app()
	if err != nil {
		return err
	}
	n := 100
	for _, f := range []string{"n", "num"} {
		if v, ok := c.flags[f]; ok {
			if n, err = strconv.Atoi(v); err != nil || n < 0 {
				return dk.Errorf(dk.EINVALID, "-n takes a number of lines, got %q", v)
			}
		}
	}
	follow := c.has("t") || c.has("tail")
	return c.s.Service.Logs(c.ctx, app.Name, n, follow, c.out)
}

func cmdKeys(c *call) error {
	keys, err := c.s.Store.Keys(c.ctx)
	if err != nil {
		return err
	}
	type row struct {
		Name        string `json:"name"`
		Fingerprint string `json:"fingerprint"`
		Admin       bool   `json:"admin"`
		Source      string `json:"source"`
	}
	rows := []row{}
	for _, k := range c.s.AdminKeys {
		rows = append(rows, row{Name: "admin", Fingerprint: gossh.FingerprintSHA256(k), Admin: true, Source: "--admin-key"})
	}
	for _, k := range keys {
		rows = append(rows, row{Name: k.Name, Fingerprint: k.Fingerprint, Admin: k.Admin, Source: "keys:add"})
	}
	if c.has("json") {
		return writeJSON(c.out, rows)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tFINGERPRINT\tSOURCE")
	for _, r := range rows {
		role := "deploy"
		if r.Admin {
			role = "admin"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, role, r.Fingerprint, r.Source)
	}
	return tw.Flush()
}

func cmdKeysAdd(c *call) error {
	name := c.args[0]
	if err := dk.ValidateKeyName(name); err != nil {
		return err
	}
	line, err := bufio.NewReader(io.LimitReader(c.sess, 16*1024)).ReadString('\n')
	if err != nil && err != io.EOF {
		return dk.Errorf(dk.EINVALID, "cannot read the public key from stdin: %v", err)
	}
	pub, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return dk.Errorf(dk.EINVALID, "stdin is not an SSH public key; usage: ssh dk keys:add NAME < ~/.ssh/id_ed25519.pub")
	}
	k := &dk.Key{Name: name, PublicKey: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub))),
		Fingerprint: gossh.FingerprintSHA256(pub), Admin: c.has("admin"), CreatedAt: time.Now().UTC()}
	for _, a := range c.s.AdminKeys {
		if gossh.FingerprintSHA256(a) == k.Fingerprint {
			return dk.Errorf(dk.ECONFLICT, "that key is already an admin key (--admin-key)")
		}
	}
	if err := c.s.Store.CreateKey(c.ctx, k); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "Added key %s (%s)\n", k.Name, k.Fingerprint)
	return nil
}

func cmdKeysRemove(c *call) error {
	if err := dk.ValidateKeyName(c.args[0]); err != nil {
		return err
	}
	if err := c.s.Store.DeleteKey(c.ctx, c.args[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "Removed key %s\n", c.args[0])
	return nil
}
