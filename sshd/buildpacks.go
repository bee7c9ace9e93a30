package sshd

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dkhq/dk"
)

// Buildpacks tells how dk builds an app's deployed commit.
type Buildpacks interface {
	// Detect returns the build plan for the commit app's deploy branch
	// points to (with the app's config, so BUILDPACK applies), and that
	// commit. For an app's own Dockerfile, DockerfileContent holds it.
	Detect(ctx context.Context, app string) (plan *dk.BuildPlan, commit string, err error)
	// Names lists the buildpacks BUILDPACK may name, in detection order.
	Names() []string
}

// buildpackConfigKey is the app config variable naming the buildpack.
const buildpackConfigKey = "BUILDPACK"

func (s *Server) buildpackCommands() []*command {
	return []*command{
		{name: "buildpacks:detect", args: "APP [--json]", help: "which buildpack builds the deployed commit, and why", flags: map[string]bool{"json": false}, min: 1, max: 1, run: cmdBuildpacksDetect},
		{name: "buildpacks:dockerfile", args: "APP", help: "print the Dockerfile dk builds for the deployed commit (commit it to eject)", min: 1, max: 1, run: cmdBuildpacksDockerfile},
		{name: "buildpacks:set", args: "APP NAME | APP --unset", help: "build with buildpack NAME instead of detecting (BUILDPACK); --unset detects again", flags: map[string]bool{"unset": false}, min: 1, max: 2, run: cmdBuildpacksSet},
	}
}

func (c *call) buildpacks() (Buildpacks, error) {
	if c.s.Buildpacks == nil {
		return nil, dk.Errorf(dk.EFAILED, "buildpacks are not available on this server")
	}
	return c.s.Buildpacks, nil
}

// detect returns the plan for the app named by the first argument.
func (c *call) detect() (*dk.App, *dk.BuildPlan, string, error) {
	app, err := c.app()
	if err != nil {
		return nil, nil, "", err
	}
	bp, err := c.buildpacks()
	if err != nil {
		return nil, nil, "", err
	}
	plan, commit, err := bp.Detect(c.ctx, app.Name)
	return app, plan, commit, err
}

func shortCommit(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}

func cmdBuildpacksDetect(c *call) error {
	app, plan, commit, err := c.detect()
	if err != nil {
		return err
	}
	if c.has("json") {
		return writeJSON(c.out, map[string]string{
			"app": app.Name, "commit": commit, "buildpack": plan.Buildpack, "reason": plan.Reason,
			"override": app.Config[buildpackConfigKey],
		})
	}
	fmt.Fprintf(c.out, "%s at %s: %s\n", app.Name, shortCommit(commit), plan.Buildpack)
	fmt.Fprintf(c.out, "       %s\n", plan.Reason)
	return nil
}

func cmdBuildpacksDockerfile(c *call) error {
	app, plan, commit, err := c.detect()
	if err != nil {
		return err
	}
	// stdout is exactly the Dockerfile, so `> Dockerfile` ejects.
	fmt.Fprintf(c.errw, "-----> %s at %s: %s buildpack\n", app.Name, shortCommit(commit), plan.Buildpack)
	if plan.Buildpack != "dockerfile" {
		fmt.Fprintf(c.errw, "       to eject: save this as Dockerfile at the repository root, commit and push\n")
	}
	_, err = c.out.Write(plan.DockerfileContent)
	return err
}

func cmdBuildpacksSet(c *call) error {
	app, err := c.app()
	if err != nil {
		return err
	}
	bp, err := c.buildpacks()
	if err != nil {
		return err
	}
	ch := dk.ConfigChange{App: app.Name, Author: c.key.Name, Output: c.errw}
	switch {
	case c.has("unset") && len(c.args) == 1:
		ch.Unset = []string{buildpackConfigKey}
	case !c.has("unset") && len(c.args) == 2:
		name := strings.ToLower(c.args[1])
		if !slices.Contains(bp.Names(), name) {
			return dk.Errorf(dk.EINVALID, "%q is not a buildpack: use one of %s", c.args[1], strings.Join(bp.Names(), ", "))
		}
		ch.Set = dk.Config{buildpackConfigKey: name}
	default:
		return dk.Errorf(dk.EINVALID, "give a buildpack name or --unset; usage: buildpacks:set APP NAME | APP --unset")
	}
	// The buildpack matters to the next build only: no release now.
	if _, err := c.s.Service.SetConfig(c.ctx, ch); err != nil {
		return err
	}
	if ch.Set != nil {
		fmt.Fprintf(c.out, "%s=%s: the next git push to %s builds with the %s buildpack\n", buildpackConfigKey, ch.Set[buildpackConfigKey], app.Name, ch.Set[buildpackConfigKey])
	} else {
		fmt.Fprintf(c.out, "%s unset: the next git push to %s detects its buildpack\n", buildpackConfigKey, app.Name)
	}
	return nil
}
