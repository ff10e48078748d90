package backends

import (
	"embed"

	"chartee/chardev"
)

// sources are this package's Go files: `chartee types TYPE` shows the
// comments of the spec fields as the keys' docs (chardev.FieldDoc).
//
//go:embed *.go
var sources embed.FS

func init() { chardev.RegisterSources("chartee/backends", sources) }
