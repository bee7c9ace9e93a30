package buildpacks

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/dkhq/dk"
)

func appliesPython(dir string) bool {
	return isFile(dir, "requirements.txt") || isFile(dir, "pyproject.toml") || isFile(dir, "Pipfile")
}

// pythonVersionRE takes major.minor from .python-version ("3.11.4", "3.12")
// or Heroku's runtime.txt ("python-3.11.4").
var pythonVersionRE = regexp.MustCompile(`^(?:python-)?([0-9]+\.[0-9]+)(?:\.[0-9]+)?\s*$`)

// pythonVersion returns the version the app asks for and where it said so.
func pythonVersion(dir string) (version, source string) {
	for _, f := range []string{".python-version", "runtime.txt"} {
		if !isFile(dir, f) {
			continue
		}
		b, err := readManifest(dir, f)
		if err != nil {
			continue
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		if m := pythonVersionRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			return m[1], f
		}
	}
	return "", ""
}

// gunicornRE finds gunicorn among the requirements or dependencies.
var gunicornRE = regexp.MustCompile(`(?mi)^\s*["']?gunicorn\b`)

func usesGunicorn(dir string) bool {
	for _, f := range []string{"requirements.txt", "pyproject.toml", "Pipfile"} {
		if b, err := readManifest(dir, f); err == nil && gunicornRE.Match(b) {
			return true
		}
	}
	return false
}

// djangoProject returns the package holding a Django project's wsgi.py
// next to manage.py, "" if none.
func djangoProject(dir string) string {
	if !isFile(dir, "manage.py") {
		return ""
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if e.IsDir() && isFile(dir, filepath.Join(e.Name(), "wsgi.py")) && isIdentifier(e.Name()) {
			return e.Name()
		}
	}
	return ""
}

var identifierRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func isIdentifier(s string) bool { return identifierRE.MatchString(s) }

// pythonCommand picks the web command: gunicorn when the app depends on it,
// else the app's main script.
func pythonCommand(dir string) command {
	const bind = "gunicorn --bind 0.0.0.0:$PORT "
	if usesGunicorn(dir) {
		switch {
		case isFile(dir, "wsgi.py"):
			return command{shell: bind + "wsgi"}
		case isFile(dir, "app.py"):
			return command{shell: bind + "app:app"}
		case djangoProject(dir) != "":
			return command{shell: bind + djangoProject(dir) + ".wsgi"}
		}
	}
	for _, f := range []string{"app.py", "main.py", "server.py"} {
		if isFile(dir, f) {
			return command{argv: []string{"python", f}}
		}
	}
	if isFile(dir, "manage.py") {
		return command{shell: "python manage.py runserver 0.0.0.0:$PORT"}
	}
	return command{}
}

func planPython(d Detector, dir string) (*dk.BuildPlan, error) {
	version, source := pythonVersion(dir)
	image, note := d.pickImage(ImagePython, version, source)
	cmd := pythonCommand(dir)
	if cmd.String() == "" && !hasWebProcess(dir) {
		return nil, noCommand("python", "gunicorn with wsgi.py or app.py, app.py, main.py, server.py or manage.py")
	}

	df := newDockerfile("python")
	df.line("FROM %s AS build", image)
	df.line("WORKDIR /app")
	df.line("ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CACHE_DIR=/root/.cache/pip PYTHONDONTWRITEBYTECODE=1")
	// A virtualenv holds the dependencies: the runtime stage copies it whole.
	df.line("RUN python3 -m venv /venv")
	const pip = "RUN --mount=type=cache,target=/root/.cache/pip /venv/bin/pip install"
	var install string
	switch {
	case isFile(dir, "requirements.txt"):
		install = "pip install -r requirements.txt"
		df.line("COPY requirements.txt ./")
		df.line("%s -r requirements.txt", pip)
		df.line("COPY . .")
	case isFile(dir, "pyproject.toml"):
		install = "pip install ."
		df.line("COPY . .")
		df.line("%s .", pip)
	default:
		install = "pipenv install"
		df.line("COPY Pipfile* ./")
		df.line("%s pipenv && /venv/bin/pipenv requirements > /tmp/requirements.txt && \\", pip)
		df.line("    /venv/bin/pip install -r /tmp/requirements.txt")
		df.line("COPY . .")
	}
	df.line("")
	df.line("FROM %s", image)
	df.line("WORKDIR /app")
	df.line("ENV PATH=/venv/bin:$PATH VIRTUAL_ENV=/venv PYTHONUNBUFFERED=1 HOME=/tmp")
	df.line("COPY --from=build /venv /venv")
	df.line("COPY --from=build --chown=%s /app /app", AppUser)
	df.line("USER %s", AppUser)
	df.command(cmd)

	reason := fmt.Sprintf("found %s; %s; %s; web runs %s", pythonManifest(dir), note, install, webCommand(dir, cmd))
	return &dk.BuildPlan{Buildpack: "python", Reason: reason, DockerfileContent: df.bytes()}, nil
}

func pythonManifest(dir string) string {
	for _, f := range []string{"requirements.txt", "pyproject.toml", "Pipfile"} {
		if isFile(dir, f) {
			return f
		}
	}
	return ""
}
