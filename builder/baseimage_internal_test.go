package builder

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBaseImages(t *testing.T) {
	for _, tc := range []struct {
		name, dockerfile string
		want             []string
	}{
		{"OK", "FROM dk-test/busybox\nRUN true\n", []string{"dk-test/busybox"}},
		{"Stages", "FROM golang:1.26 AS Build\nRUN make\nFROM build\nFROM scratch\nCOPY --from=build /a /a\nFROM debian:12 as final\n", []string{"golang:1.26", "debian:12"}},
		{"Args", "ARG BASE=dk-test/busybox\nARG TAG\nFROM ${BASE}:${TAG:-latest}\nARG LATE=x\nFROM $LATE\nFROM $UNSET\n", []string{"dk-test/busybox:latest"}},
		{"Platform", "FROM --platform=$BUILDPLATFORM alpine\n", []string{"alpine"}},
		{"Unparsable", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, baseImages([]byte(tc.dockerfile))); diff != "" {
				t.Errorf("baseImages (-want +got):\n%s", diff)
			}
		})
	}
}
