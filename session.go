package dk

import "time"

// Session is who a dashboard login link or browser session stands for, and
// until when. The store keeps sessions under the SHA-256 of their secret,
// never the secret itself.
type Session struct {
	Key       Key       `json:"key"`
	CreatedAt time.Time `json:"created_at"`
	Expires   time.Time `json:"expires"`
}
