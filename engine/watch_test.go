package engine_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/google/go-cmp/cmp"

	"github.com/dkhq/dk/engine"
)

// TestWatchResubscribes runs Watch against a fake engine whose event stream
// breaks after one event: Watch must ask for a full resync, then resubscribe
// from the last event it saw.
func TestWatchResubscribes(t *testing.T) {
	const instance = "dkfake"
	var (
		mu      sync.Mutex
		queries []string
	)
	event := func(w http.ResponseWriter, app string, nanos int64) {
		json.NewEncoder(w).Encode(map[string]any{
			"Type": "container", "Action": "die",
			"Actor":    map[string]any{"ID": "c-" + app, "Attributes": map[string]string{"dk.app": app, "dk.instance": instance}},
			"time":     nanos / 1e9,
			"timeNano": nanos,
		})
		w.(http.Flusher).Flush()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1.41/networks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]map[string]any{{"Name": instance, "Id": "n1", "Driver": "bridge"}})
	})
	mux.HandleFunc("GET /v1.41/events", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		n := len(queries)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n == 1 {
			event(w, "first", 1700000000123456789)
			return // the stream breaks
		}
		event(w, "second", 1700000001000000000)
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	cli, err := client.NewClientWithOpts(client.WithHost("tcp://"+strings.TrimPrefix(srv.URL, "http://")), client.WithVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := engine.New(ctx, cli, instance, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}

	apps := make(chan string, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Watch(ctx, func(app string) { apps <- app })
	}()
	var got []string
	for len(got) < 3 {
		select {
		case app := <-apps:
			got = append(got, app)
		case <-time.After(10 * time.Second):
			t.Fatalf("changes so far %q", got)
		}
	}
	if diff := cmp.Diff([]string{"first", "", "second"}, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return when ctx ended")
	}

	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"dk.instance%3D" + instance, "container", "die", "oom"} {
		if !strings.Contains(queries[0], want) {
			t.Errorf("first subscription %q lacks %q", queries[0], want)
		}
	}
	if strings.Contains(queries[0], "since=") {
		t.Errorf("first subscription %q asks for past events", queries[0])
	}
	if !strings.Contains(queries[1], "since=1700000000.123456789") {
		t.Errorf("resubscription %q does not resume from the last event", queries[1])
	}
}
