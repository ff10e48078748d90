package daemon

import (
	"errors"
	"time"
)

// ErrInvalid marks an error the daemon found in a request (a spec that
// decodes but cannot apply to this tee, say), as opposed to a device that
// would not open. The control API answers it 400 bad_request, not 422.
var ErrInvalid = errors.New("invalid request")

// ReloadReport says what a reload changed. Entries name a tee, or a
// backend as tee/backend.
type ReloadReport struct {
	File     string
	Started  []string // tees started
	Stopped  []string // tees stopped
	Attached []string // backends attached
	Detached []string // backends detached
	Swapped  []string // backends hot-swapped to a new device
	Updated  []string // backends (and tee settings) changed in place
	Frontend []string // tees whose frontend was swapped
	Warnings []string
	Elapsed  time.Duration
}
