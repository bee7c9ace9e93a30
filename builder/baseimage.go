package builder

import (
	"bytes"
	"context"
	"strings"

	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// baseImages returns the images a Dockerfile's stages are built FROM, as
// written after expanding the ARGs declared before the first FROM. It skips
// scratch, earlier stages and anything it cannot know without building; it
// returns nil for a Dockerfile it cannot parse (BuildKit will say why).
func baseImages(dockerfile []byte) []string {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil
	}
	args := env{}
	stages := map[string]bool{}
	lex := shell.NewLex(res.EscapeToken)
	var images []string
	seenFrom := false
	for _, n := range res.AST.Children {
		switch strings.ToLower(n.Value) {
		case "arg":
			if seenFrom {
				continue
			}
			for a := n.Next; a != nil; a = a.Next {
				k, v, _ := strings.Cut(a.Value, "=")
				args[k] = v
			}
		case "from":
			seenFrom = true
			if n.Next == nil {
				return images
			}
			name := n.Next.Value
			if strings.Contains(name, "$") {
				name, _, err = lex.ProcessWord(name, args)
				if err != nil {
					name = ""
				}
			}
			if name != "" && !strings.Contains(name, "$") && !strings.EqualFold(name, "scratch") && !stages[strings.ToLower(name)] {
				images = append(images, name)
			}
			if as := n.Next.Next; as != nil && strings.EqualFold(as.Value, "as") && as.Next != nil {
				stages[strings.ToLower(as.Next.Value)] = true
			}
		}
	}
	return images
}

// env is an ARG environment for shell.Lex.
type env map[string]string

func (e env) Get(k string) (string, bool) { v, ok := e[k]; return v, ok }

func (e env) Keys() []string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	return keys
}

// checkBaseImages returns the dk.EFAILED error for the first base image of
// dockerfile the engine does not have. BuildKit would otherwise try to pull
// it from a registry: dk never pulls.
func checkBaseImages(ctx context.Context, docker *client.Client, dockerfile []byte) error {
	for _, ref := range baseImages(dockerfile) {
		if _, err := docker.ImageInspect(ctx, ref); errdefs.IsNotFound(err) {
			return missingImage(ref)
		}
	}
	return nil
}
