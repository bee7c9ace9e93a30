package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

type healthReport struct {
	Status string            `json:"status"` // ok or unhealthy
	Checks map[string]string `json:"checks"` // name → ok or the error
}

// healthz answers whether dk's dependencies answer: 200 when all do, 503
// otherwise. No session needed; it names no app and holds no secret.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	rep := healthReport{Status: "ok", Checks: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range s.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := "ok"
			if err := c.Ping(ctx); err != nil {
				res = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Checks[c.Name] = res
			if res != "ok" {
				rep.Status = "unhealthy"
			}
		}()
	}
	wg.Wait()
	w.Header().Set("Content-Type", "application/json")
	if rep.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}
