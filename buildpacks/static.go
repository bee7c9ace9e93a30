package buildpacks

import (
	"fmt"

	"github.com/dkhq/dk"
)

func appliesStatic(dir string) bool {
	return isFile(dir, "index.html") || isDir(dir, "public") && isFile(dir, "public/index.html")
}

// planStatic serves the site with busybox httpd from the static image. The
// root wins over public/ when both have an index.html.
func planStatic(d Detector, dir string) (*dk.BuildPlan, error) {
	image := d.image(ImageStatic)
	src, from := ".", "index.html"
	if !isFile(dir, "index.html") {
		src, from = "public/", "public/index.html"
	}
	cmd := command{shell: "httpd -f -v -p $PORT -h /srv/www"}

	df := newDockerfile("static")
	// One stage: there is nothing to compile; the image is the file server
	// and the files.
	df.line("FROM %s", image)
	df.line("COPY %s /srv/www/", src)
	df.line("WORKDIR /srv/www")
	df.line("USER %s", AppUser)
	df.command(cmd)

	reason := fmt.Sprintf("found %s; serving %s with httpd from %s; web runs %s", from, src, image, webCommand(dir, cmd))
	return &dk.BuildPlan{Buildpack: "static", Reason: reason, DockerfileContent: df.bytes()}, nil
}
