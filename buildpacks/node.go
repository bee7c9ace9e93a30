package buildpacks

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"

	"github.com/dkhq/dk"
)

// packageJSON is what the Node.js buildpack reads from package.json.
type packageJSON struct {
	Main    string            `json:"main"`
	Scripts map[string]string `json:"scripts"`
	Engines map[string]string `json:"engines"`
}

// nodeMajorRE finds the first major version in an engines.node range
// (">=18", "^20.1.0", "18.x", "20 || 22").
var nodeMajorRE = regexp.MustCompile(`[0-9]+`)

func nodeMajor(engines string) string {
	return nodeMajorRE.FindString(engines)
}

func planNode(d Detector, dir string) (*dk.BuildPlan, error) {
	b, err := readManifest(dir, "package.json")
	if err != nil {
		return nil, err
	}
	var pkg packageJSON
	if err := json.Unmarshal(b, &pkg); err != nil {
		return nil, dk.Errorf(dk.EINVALID, "package.json is not valid JSON: %v", err)
	}
	image, note := d.pickImage(ImageNode, nodeMajor(pkg.Engines["node"]), "package.json engines.node")

	var cmd command
	switch {
	case pkg.Scripts["start"] != "":
		cmd.argv = []string{"npm", "start"}
	case pkg.Main != "" && filepath.IsLocal(pkg.Main) && isFile(dir, pkg.Main):
		cmd.argv = []string{"node", pkg.Main}
	default:
		for _, f := range []string{"server.js", "index.js", "app.js", "main.js"} {
			if isFile(dir, f) {
				cmd.argv = []string{"node", f}
				break
			}
		}
	}
	if len(cmd.argv) == 0 && !hasWebProcess(dir) {
		return nil, noCommand("node", `a "start" script or "main" in package.json, server.js, index.js, app.js or main.js`)
	}

	lock := ""
	for _, f := range []string{"package-lock.json", "npm-shrinkwrap.json"} {
		if isFile(dir, f) {
			lock = f
			break
		}
	}
	install := "npm install"
	if lock != "" {
		install = "npm ci"
	}
	const npmFlags = "--no-audit --no-fund --no-update-notifier"
	build := pkg.Scripts["build"] != ""

	df := newDockerfile("node")
	df.line("FROM %s AS build", image)
	df.line("WORKDIR /app")
	df.line("ENV NPM_CONFIG_CACHE=/root/.npm NPM_CONFIG_UPDATE_NOTIFIER=false")
	// Dependencies first: installed again only when the manifests change.
	files := "package.json"
	if lock != "" {
		files += " " + lock
	}
	df.line("COPY %s ./", files)
	if build {
		// The build script may need devDependencies: install all, build,
		// then drop them.
		df.line("RUN --mount=type=cache,target=/root/.npm %s %s", install, npmFlags)
		df.line("COPY . .")
		df.line("RUN npm run build && npm prune --omit=dev %s", npmFlags)
	} else {
		df.line("RUN --mount=type=cache,target=/root/.npm %s --omit=dev %s", install, npmFlags)
		df.line("COPY . .")
	}
	df.line("")
	df.line("FROM %s", image)
	df.line("WORKDIR /app")
	df.line("ENV NODE_ENV=production NPM_CONFIG_UPDATE_NOTIFIER=false HOME=/tmp")
	df.line("COPY --from=build --chown=%s /app /app", AppUser)
	df.line("USER %s", AppUser)
	df.command(cmd)

	reason := fmt.Sprintf("found package.json; %s; %s", note, install)
	if build {
		reason += ", npm run build"
	}
	reason += "; web runs " + webCommand(dir, cmd)
	return &dk.BuildPlan{Buildpack: "node", Reason: reason, DockerfileContent: df.bytes()}, nil
}
