package builder

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/dkhq/dk"
	"github.com/moby/buildkit/util/grpcerrors"
	"google.golang.org/grpc/codes"
)

// imageSteps match the steps in which BuildKit resolves or loads an image:
// when one fails, the engine does not have the image (BuildKit then tried a
// registry, and would have pulled from it had it been reachable).
var imageSteps = []*regexp.Regexp{
	regexp.MustCompile(`^\[internal\] load metadata for (\S+)$`),
	regexp.MustCompile(`^(?:\[[^\]]*\] )?FROM (\S+)$`),
}

// imageStep returns the image a step resolves or loads, or "".
func imageStep(name string) string {
	for _, re := range imageSteps {
		if m := re.FindStringSubmatch(name); m != nil {
			return m[1]
		}
	}
	return ""
}

// buildError maps a failed solve to a dk.EFAILED error with BuildKit's
// reason on one line. Errors that are not about the build itself (the
// connection to the engine broke) are returned as they are, wrapped.
func buildError(err error, step *failedStep) error {
	if !userError(err) {
		return fmt.Errorf("build: %w", err)
	}
	if step != nil {
		if img := imageStep(step.name); img != "" {
			return missingImage(img)
		}
		return dk.Errorf(dk.EFAILED, "build failed: %s", oneLine(step.err))
	}
	return dk.Errorf(dk.EFAILED, "build failed: %s", reason(err))
}

// missingImage is the error for a base image the engine does not have.
func missingImage(ref string) error {
	return dk.Errorf(dk.EFAILED, "build failed: base image %s is not in the local Docker engine (dk never pulls images: build or import it there first)", ref)
}

// wrappers are the prefixes BuildKit adds on its way up; they say nothing
// to the user.
var wrappers = []string{
	"failed to solve: ",
	"failed to solve with frontend dockerfile.v0: ",
	"failed to create LLB definition: ",
	"failed to build LLB: ",
	"failed to compute cache key: ",
	"rpc error: code = Unknown desc = ",
}

// reason returns BuildKit's reason for a failed build as one line, without
// BuildKit's own wrapping.
func reason(err error) string {
	s := oneLine(err.Error())
	for trimmed := true; trimmed; {
		trimmed = false
		for _, w := range wrappers {
			if t, ok := strings.CutPrefix(s, w); ok {
				s, trimmed = t, true
			}
		}
	}
	return s
}

// userError reports whether a failed solve is about the build rather than
// about reaching BuildKit.
func userError(err error) bool {
	switch grpcerrors.Code(err) {
	case codes.Unavailable, codes.Unimplemented, codes.DeadlineExceeded, codes.Canceled, codes.Unauthenticated:
		return false
	}
	return true
}
