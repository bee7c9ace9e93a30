package buildpacks_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/buildpacks"
)

func TestDetect(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM x\n"), 0o644)
		plan, err := buildpacks.Detector{}.Detect(dir)
		if err != nil {
			t.Fatal(err)
		}
		if plan.Buildpack != "dockerfile" || plan.Dockerfile != "Dockerfile" {
			t.Errorf("plan = %+v", plan)
		}
	})
	t.Run("ErrNothingDetected", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "README"), []byte("hi"), 0o644)
		os.Mkdir(filepath.Join(dir, "Dockerfile.d"), 0o755)
		_, err := buildpacks.Detector{}.Detect(dir)
		if dk.ErrorCode(err) != dk.EINVALID || !strings.Contains(err.Error(), "add a Dockerfile") {
			t.Errorf("err = %v", err)
		}
	})
}
