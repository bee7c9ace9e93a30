package builder

import (
	"context"
	"errors"
	"fmt"
)

// Ping checks that BuildKit answers and has a worker (dkd's /healthz).
func (c *Client) Ping(ctx context.Context) error {
	workers, err := c.bk.ListWorkers(ctx)
	if err == nil && len(workers) == 0 {
		err = errors.New("no BuildKit worker")
	}
	if err != nil {
		return fmt.Errorf("BuildKit: %w", err)
	}
	return nil
}
