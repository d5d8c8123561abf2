package gl

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	gl "github.com/go-gl/gl/v4.3-core/gl"
)

// dumpDir, from GLIMMER_GL_DUMP, is a folder that receives each compiled
// program's source and the driver's program binary (NVIDIA's holds the
// assembly its compiler made, readable with `strings`): for reading what
// a shader variant compiled to, e.g. whether its arrays stayed in registers.
var dumpDir = os.Getenv("GLIMMER_GL_DUMP")

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.=-]+`)

// dump writes program p's source and binary into dumpDir; errors are
// reported on the backend's next Sync, as GL errors are. GL thread only.
func (b *Backend) dump(key, src string, p *program) {
	if dumpDir == "" {
		return
	}
	base := filepath.Join(dumpDir, unsafeName.ReplaceAllString(key, "_"))
	if err := os.WriteFile(base+".comp", []byte(src), 0o644); err != nil {
		b.setErr(fmt.Errorf("gl: GLIMMER_GL_DUMP: %w", err))
		return
	}
	var n int32
	gl.GetProgramiv(p.id, gl.PROGRAM_BINARY_LENGTH, &n)
	if n <= 0 {
		return
	}
	bin := make([]byte, n)
	var length int32
	var format uint32
	gl.GetProgramBinary(p.id, n, &length, &format, gl.Ptr(&bin[0]))
	if err := os.WriteFile(base+".bin", bin[:length], 0o644); err != nil {
		b.setErr(fmt.Errorf("gl: GLIMMER_GL_DUMP: %w", err))
	}
}
