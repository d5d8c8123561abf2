package gl

import (
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	gl "github.com/go-gl/gl/v4.3-core/gl"

	"glimmer/shaders"
)

// program is one compiled variant of one op's shader.
type program struct {
	op       string
	id       uint32
	uniforms map[string]int32
	// readOnly[i]: every declaration of binding i is readonly, so a
	// dispatch only reads the buffer bound there (hazards.go). Bindings
	// past its end count as written.
	readOnly []bool
}

// defines are the #define lines that select a shader variant.
type defines map[string]int

func (d defines) key() string {
	names := make([]string, 0, len(d))
	for n := range d {
		names = append(names, n)
	}
	sort.Strings(names)
	var sb strings.Builder
	for _, n := range names {
		fmt.Fprintf(&sb, "%s=%d;", n, d[n])
	}
	return sb.String()
}

// source assembles the shader text: version line, defines, then the op's
// file with its #include lines expanded.
func source(op string, d defines) (string, error) {
	var sb strings.Builder
	sb.WriteString("#version 430 core\n")
	names := make([]string, 0, len(d))
	for n := range d {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&sb, "#define %s %d\n", n, d[n])
	}
	if err := expand(&sb, op+".comp", 0); err != nil {
		return "", err
	}
	return sb.String(), nil
}

func expand(sb *strings.Builder, name string, depth int) error {
	if depth > 8 {
		return fmt.Errorf("shader %s: includes nest too deeply", name)
	}
	text, err := shaders.FS.ReadFile(name)
	if err != nil {
		return fmt.Errorf("shader %s: %w", name, err)
	}
	for _, line := range strings.SplitAfter(string(text), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "#include") {
			inc := strings.Trim(strings.TrimSpace(strings.TrimPrefix(t, "#include")), `"<>`)
			if err := expand(sb, inc, depth+1); err != nil {
				return err
			}
			continue
		}
		sb.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			sb.WriteByte('\n')
		}
	}
	return nil
}

// program returns the compiled variant, compiling it on first use. GL
// thread only.
func (b *Backend) program(op string, d defines) (*program, error) {
	if len(b.extraDefs) > 0 {
		e := defines{}
		maps.Copy(e, d)
		maps.Copy(e, b.extraDefs)
		d = e
	}
	key := op + "|" + d.key()
	if p, ok := b.programs[key]; ok {
		return p, nil
	}
	src, err := source(op, d)
	if err != nil {
		return nil, err
	}
	p, err := compile(op, src)
	if err != nil {
		return nil, fmt.Errorf("gl: %s on %q: %w", op, b.renderer, err)
	}
	p.readOnly = readOnlyBindings(src, d)
	b.programs[key] = p
	b.dump(key, src, p)
	return p, nil
}

func compile(op, src string) (*program, error) {
	sh := gl.CreateShader(gl.COMPUTE_SHADER)
	defer gl.DeleteShader(sh)
	csrc, free := gl.Strs(src + "\x00")
	gl.ShaderSource(sh, 1, csrc, nil)
	free()
	gl.CompileShader(sh)
	var ok int32
	gl.GetShaderiv(sh, gl.COMPILE_STATUS, &ok)
	if ok == gl.FALSE {
		return nil, fmt.Errorf("shader %s.comp does not compile: %s", op, explain(infoLog(sh, false), src))
	}
	id := gl.CreateProgram()
	gl.AttachShader(id, sh)
	gl.LinkProgram(id)
	gl.GetProgramiv(id, gl.LINK_STATUS, &ok)
	if ok == gl.FALSE {
		log := infoLog(id, true)
		gl.DeleteProgram(id)
		return nil, fmt.Errorf("shader %s.comp does not link: %s", op, explain(log, src))
	}
	p := &program{op: op, id: id, uniforms: map[string]int32{}}
	var n int32
	gl.GetProgramiv(id, gl.ACTIVE_UNIFORMS, &n)
	name := make([]byte, 256)
	for i := range uint32(n) {
		var length, size int32
		var typ uint32
		gl.GetActiveUniform(id, i, int32(len(name)), &length, &size, &typ, &name[0])
		s := strings.TrimSuffix(string(name[:length]), "[0]")
		p.uniforms[s] = gl.GetUniformLocation(id, gl.Str(s+"\x00"))
	}
	return p, nil
}

func infoLog(obj uint32, isProgram bool) string {
	var n int32
	if isProgram {
		gl.GetProgramiv(obj, gl.INFO_LOG_LENGTH, &n)
	} else {
		gl.GetShaderiv(obj, gl.INFO_LOG_LENGTH, &n)
	}
	if n <= 1 {
		return "(the driver gave no log)"
	}
	log := make([]byte, n)
	if isProgram {
		gl.GetProgramInfoLog(obj, n, nil, &log[0])
	} else {
		gl.GetShaderInfoLog(obj, n, nil, &log[0])
	}
	return strings.TrimRight(string(log), "\x00\n ")
}

// Drivers cite lines as "0:12(5)" (Mesa), "0(12)" (NVIDIA) or "ERROR: 0:12:".
var logLine = regexp.MustCompile(`\b0[:(](\d+)`)

// explain appends the source line the driver's log points at.
func explain(log, src string) string {
	msg := log
	if m := logLine.FindStringSubmatch(log); m != nil {
		n, _ := strconv.Atoi(m[1])
		lines := strings.Split(src, "\n")
		if n >= 1 && n <= len(lines) {
			msg += fmt.Sprintf(" | line %d: %s", n, strings.TrimSpace(lines[n-1]))
		}
	}
	return msg
}

// uniforms set a program's parameters before a dispatch.
type uniforms struct {
	p *program
}

func (u uniforms) i(name string, v int) {
	if loc, ok := u.p.uniforms[name]; ok {
		gl.Uniform1i(loc, int32(v))
	}
}

func (u uniforms) u(name string, v uint32) {
	if loc, ok := u.p.uniforms[name]; ok {
		gl.Uniform1ui(loc, v)
	}
}

func (u uniforms) f(name string, v float32) {
	if loc, ok := u.p.uniforms[name]; ok {
		gl.Uniform1f(loc, v)
	}
}

func (u uniforms) iv(name string, v []int) {
	if loc, ok := u.p.uniforms[name]; ok {
		w := make([]int32, len(v))
		for i, x := range v {
			w[i] = int32(x)
		}
		gl.Uniform1iv(loc, int32(len(w)), &w[0])
	}
}

// dispatch queues one run of an op's shader over `groups` work groups,
// split over up to three dimensions so none exceeds the driver's limit
// (65,535 on llvmpipe); shaders rebuild the linear id with group_id() in
// common.glsl. bufs are bound to bindings 0, 1, 2, … in order; set writes
// the op's uniforms.
func (b *Backend) dispatch(op string, d defines, groups int, bufs []*buffer, set func(u uniforms)) {
	if groups <= 0 {
		return
	}
	b.enqueue(func() {
		p, err := b.program(op, d)
		if err != nil {
			b.setErr(err)
			return
		}
		gl.UseProgram(p.id)
		for i, s := range bufs {
			if s.root != nil {
				gl.BindBufferRange(gl.SHADER_STORAGE_BUFFER, uint32(i), s.root.id, s.off, s.bytes)
			} else {
				gl.BindBufferBase(gl.SHADER_STORAGE_BUFFER, uint32(i), s.id)
			}
		}
		u := uniforms{p}
		u.u("u_groups", uint32(groups))
		if set != nil {
			set(u)
		}
		x, y, z := split(groups, b.limits.MaxGroupCount)
		b.hazards.before(p, bufs, b.barrierAll)
		var q0 uint32
		var start time.Time
		if b.profile != nil {
			q0, start = b.profile.begin()
		}
		gl.DispatchCompute(uint32(x), uint32(y), uint32(z))
		if b.barrierAll {
			gl.MemoryBarrier(barrierBits)
		}
		// After the host waited, the GPU idles until the driver submits what
		// follows: flushAt N (GLIMMER_GL_FLUSH, 4 unless set) submits after N
		// dispatches, then 2N, 4N...
		if b.sinceHost++; b.flushAt > 0 && b.sinceHost%b.flushAt == 0 && isPow2(b.sinceHost/b.flushAt) {
			gl.Flush()
		}
		if b.profile != nil {
			b.profile.end(op+" "+d.key(), q0, start)
		}
		b.checkGL(op)
	})
}

// split spreads n work groups over a 3-D grid within lim.
func split(n int, lim [3]int) (x, y, z int) {
	x = min(n, lim[0])
	rest := (n + x - 1) / x
	y = min(rest, lim[1])
	z = (rest + y - 1) / y
	if z > lim[2] {
		panic(fmt.Sprintf("gl: %d work groups exceed the driver's grid %v", n, lim))
	}
	return x, y, z
}

// isPow2 reports whether n is a power of two.
func isPow2(n int) bool { return n > 0 && n&(n-1) == 0 }
