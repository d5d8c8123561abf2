package lora

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"glimmer/engine"
	"glimmer/engine/model"
	"glimmer/engine/nn"
	"glimmer/engine/safetensors"
)

// Weighted is a LoRA with the weight it is applied at.
type Weighted struct {
	File   *File
	Path   string // for error messages
	Weight float32
}

// lister is a source that can list its tensors (model.Weights can).
type lister interface {
	Names() []string
}

// infoer is a source that describes a tensor without reading it.
type infoer interface {
	Info(name string) (model.TensorInfo, bool)
}

// add is one module's contribution to a weight.
type add struct {
	m     *Module
	scale float64 // weight · alpha / rank
}

// merged is the source Apply returns.
type merged struct {
	src  nn.Source
	adds map[string][]add // weight name in src → its modules, in order
}

// Apply returns a source whose Raw gives every weight of component
// ("unet" or "text_encoder") that a module of loras adapts as
//
//	W + Σ weight · (alpha / rank) · up · down
//
// accumulated in float64 on the host from W's values and returned in W's
// own dtype (F16 rounds once from float32); every other tensor passes
// through untouched. Modules of the other component are skipped. Each
// module is resolved against the weights src has (src should list its
// names, as model.Weights does; kohya's LDM U-Net names are mapped with
// the layout those names show) and its shapes are checked against the
// weight now: a module naming a weight the model lacks, or whose shapes
// disagree with it, is an error naming the LoRA file. With no module for
// this component src itself is returned.
func Apply(src nn.Source, component string, loras []Weighted) (nn.Source, error) {
	if component != UNet && component != TextEncoder {
		panic("lora.Apply: component " + strconv.Quote(component) + " is not unet or text_encoder")
	}
	r := newResolver(src, component)
	out := &merged{src: src, adds: map[string][]add{}}
	for _, l := range loras {
		if l.File == nil {
			panic("lora.Apply: nil File")
		}
		for i := range l.File.Modules {
			m := &l.File.Modules[i]
			if !strings.HasPrefix(m.Name, component+".") {
				continue
			}
			what := fmt.Sprintf("%s: module %s", base(l.Path), KohyaName(m.Name))
			if err := m.check(what); err != nil {
				return nil, err
			}
			target, err := r.resolve(m.Name)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", what, err)
			}
			shape, err := r.shape(target)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", what, err)
			}
			if err := fits(m, shape); err != nil {
				return nil, fmt.Errorf("%s: %v", what, err)
			}
			if l.Weight == 0 {
				continue // exactly no change; the module was still checked
			}
			out.adds[target] = append(out.adds[target], add{m: m, scale: float64(l.Weight) * m.Scale()})
		}
	}
	if len(out.adds) == 0 {
		return src, nil
	}
	return out, nil
}

// fits checks a module against the adapted weight's shape: up [Out, R,
// (1, 1)] and down [R, In, (KH, KW)] against W [Out, In, (KH, KW)],
// trailing 1x1 extents aside (a 1x1 convolution and a Linear take the
// same LoRA).
func fits(m *Module, w engine.Shape) error {
	trim := func(s []int) []int {
		for len(s) > 0 && s[len(s)-1] == 1 {
			s = s[:len(s)-1]
		}
		return s
	}
	ok := len(w) >= 2 && w[0] == m.UpShape[0]
	if ok {
		a, b := trim(append([]int(nil), w[1:]...)), trim(append([]int(nil), m.DownShape[1:]...))
		ok = len(a) == len(b)
		for i := 0; ok && i < len(a); i++ {
			ok = a[i] == b[i]
		}
	}
	if !ok {
		return fmt.Errorf("lora_up %v · lora_down %v does not fit the model's weight %v", m.UpShape, m.DownShape, []int(w))
	}
	return nil
}

// resolver finds the weight a module adapts.
type resolver struct {
	src       nn.Source
	component string
	names     map[string]bool   // the source's tensor names, when it lists them
	kohya     map[string]string // kohya module name → weight name ("" when two clash)
	unet      model.UNetConfig  // the layout the names show, for LDM names
}

func newResolver(src nn.Source, component string) *resolver {
	r := &resolver{src: src, component: component}
	l, ok := src.(lister)
	if !ok {
		return r
	}
	r.names, r.kohya = map[string]bool{}, map[string]string{}
	for _, n := range l.Names() {
		r.names[n] = true
		mod, ok := strings.CutSuffix(n, ".weight")
		if !ok {
			continue
		}
		k := KohyaName(component + "." + mod)
		if _, clash := r.kohya[k]; clash {
			r.kohya[k] = ""
		} else {
			r.kohya[k] = n
		}
	}
	if component == UNet {
		r.unet = layout(r.names)
	}
	return r
}

// layout reads the U-Net topology LDM names depend on from its diffusers
// names: ResNets per down block, which up blocks and whether the mid
// block have transformers.
func layout(names map[string]bool) model.UNetConfig {
	var u model.UNetConfig
	ups := -1
	attn := map[int]bool{}
	for n := range names {
		if rest, ok := strings.CutPrefix(n, "down_blocks.0.resnets."); ok {
			if i, _, ok := leadingInt(rest); ok {
				u.LayersPerBlock = max(u.LayersPerBlock, i+1)
			}
		}
		if rest, ok := strings.CutPrefix(n, "up_blocks."); ok {
			if i, sub, ok := leadingInt(rest); ok {
				ups = max(ups, i)
				if strings.HasPrefix(sub, "attentions.") {
					attn[i] = true
				}
			}
		}
		if strings.HasPrefix(n, "mid_block.attentions.") {
			u.MidAttention = true
		}
	}
	u.UpAttention = make([]bool, ups+1)
	for i := range u.UpAttention {
		u.UpAttention[i] = attn[i]
	}
	return u
}

// leadingInt parses "N.rest".
func leadingInt(s string) (int, string, bool) {
	i := strings.IndexByte(s, '.')
	if i <= 0 {
		return 0, "", false
	}
	n, err := strconv.Atoi(s[:i])
	return n, s[i+1:], err == nil && n >= 0
}

// resolve returns the name in src of the weight module name adapts.
func (r *resolver) resolve(name string) (string, error) {
	rel := strings.TrimPrefix(name, r.component+".")
	if r.names == nil {
		// A source that cannot list its names: take the name as given.
		if _, err := r.src.Raw(rel + ".weight"); err != nil {
			return "", fmt.Errorf("the model has no weight %s.weight", rel)
		}
		return rel + ".weight", nil
	}
	k := KohyaName(name)
	if t, ok := r.kohya[k]; ok {
		if t == "" {
			return "", fmt.Errorf("the name matches more than one of the model's weights")
		}
		return t, nil
	}
	if r.component == UNet {
		if t, ok, err := r.resolveLDM(k[len(prefixUNet):]); ok || err != nil {
			return t, err
		}
	}
	return "", fmt.Errorf("the model has no such weight (%s)", r.component)
}

// resolveLDM maps kohya's LDM-flavoured U-Net names
// ("input_blocks_1_1_transformer_blocks_0_attn1_to_q") through
// model.LDMUNetName: the block indices are read by position, and each way
// of reading the rest's underscores as dots is tried; exactly one must
// name a weight the model has.
func (r *resolver) resolveLDM(under string) (string, bool, error) {
	words := strings.Split(under, "_")
	var head []string // the dotted block path: input_blocks.1.1
	var rest []string
	isNum := func(s string) bool { _, err := strconv.Atoi(s); return err == nil }
	switch {
	case len(words) >= 4 && (words[0] == "input" || words[0] == "output") && words[1] == "blocks" && isNum(words[2]) && isNum(words[3]):
		head, rest = []string{words[0] + "_blocks", words[2], words[3]}, words[4:]
	case len(words) >= 3 && words[0] == "middle" && words[1] == "block" && isNum(words[2]):
		head, rest = []string{"middle_block", words[2]}, words[3:]
	case len(words) == 3 && words[0] == "time" && words[1] == "embed" && isNum(words[2]):
		head = []string{"time_embed", words[2]}
	case len(words) == 2 && words[0] == "out" && isNum(words[1]):
		head = []string{"out", words[1]}
	default:
		return "", false, nil
	}
	if len(rest) > 16 {
		return "", false, nil
	}
	prefix := strings.Join(head, ".")
	found := map[string]bool{}
	var hit string
	for mask := 0; mask < 1<<max(len(rest)-1, 0); mask++ {
		var sb strings.Builder
		sb.WriteString(prefix)
		for i, w := range rest {
			switch {
			case i == 0:
				sb.WriteByte('.')
			case mask&(1<<(i-1)) != 0:
				sb.WriteByte('_')
			default:
				sb.WriteByte('.')
			}
			sb.WriteString(w)
		}
		sb.WriteString(".weight")
		canon, ok := model.LDMUNetName(r.unet, sb.String())
		if ok && r.names[canon] && !found[canon] {
			found[canon] = true
			hit = canon
		}
	}
	switch len(found) {
	case 0:
		return "", false, nil
	case 1:
		return hit, true, nil
	}
	return "", false, fmt.Errorf("the LDM name matches %d of the model's weights", len(found))
}

// shape is a weight's shape, from the source's description or its data.
func (r *resolver) shape(name string) (engine.Shape, error) {
	if in, ok := r.src.(infoer); ok {
		if ti, ok := in.Info(name); ok {
			return ti.Shape, nil
		}
	}
	d, err := r.src.Raw(name)
	if err != nil {
		return nil, err
	}
	return d.Shape, nil
}

// Raw returns the named tensor with the LoRAs added when it is adapted.
func (s *merged) Raw(name string) (model.Data, error) {
	d, err := s.src.Raw(name)
	adds := s.adds[name]
	if err != nil || len(adds) == 0 {
		return d, err
	}
	w, err := toFloat32(d)
	if err != nil {
		return model.Data{}, fmt.Errorf("LoRA on %s: %w", name, err)
	}
	out := d.Shape[0]
	k := len(w) / out
	// The down matrices widened once: [R, K] float64 each.
	downs := make([][]float64, len(adds))
	for i, a := range adds {
		downs[i] = make([]float64, len(a.m.Down)) // [R, K]
		for j, v := range a.m.Down {
			downs[i][j] = float64(v)
		}
	}
	res := make([]float32, len(w)) // W's shape
	for i := range res {
		res[i] = float32(math.NaN()) // every element must be written below
	}
	blocks := (out + rowBlock - 1) / rowBlock
	parallelFor(blocks, func() func(int) {
		acc := make([]float64, rowBlock*k) // [rows, K]: W + ΔW of one row block
		var coef []float64
		return func(b int) {
			o0 := b * rowBlock
			nr := min(rowBlock, out-o0)
			a := acc[:nr*k]
			for j, v := range w[o0*k : (o0+nr)*k] {
				a[j] = float64(v)
			}
			for i, ad := range adds {
				rank := ad.m.UpShape[1]
				coef = coef[:0] // [rows, R]: weight·scale·up
				for _, u := range ad.m.Up[o0*rank : (o0+nr)*rank] {
					coef = append(coef, ad.scale*float64(u))
				}
				addLowRank(a, nr, k, coef, downs[i], rank)
			}
			for j, v := range a {
				res[o0*k+j] = float32(v)
			}
		}
	})
	nd := model.Data{DType: d.DType, Shape: d.Shape.Clone()}
	switch d.DType {
	case engine.F16:
		nd.Bytes = make([]byte, 2*len(res))
		for i, v := range res {
			binary.LittleEndian.PutUint16(nd.Bytes[2*i:], safetensors.Float32ToHalf(v))
		}
	default:
		nd.DType = engine.F32
		nd.Bytes = make([]byte, 4*len(res))
		for i, v := range res {
			binary.LittleEndian.PutUint32(nd.Bytes[4*i:], math.Float32bits(v))
		}
	}
	return nd, nil
}

// rowBlock is how many output rows addLowRank updates together.
const rowBlock = 4

// addLowRank adds coef·down to acc: acc [nr, k] += coef [nr, rank] ·
// down [rank, k], all float64. Full blocks of 4 rows and 4 ranks share
// each load of down and acc across 16 multiply-adds.
func addLowRank(acc []float64, nr, k int, coef, down []float64, rank int) {
	r := 0
	if nr == 4 {
		a0, a1, a2, a3 := acc[:k], acc[k:2*k], acc[2*k:3*k], acc[3*k:4*k]
		for ; r+4 <= rank; r += 4 {
			d0 := down[r*k : r*k+k]
			d1 := down[(r+1)*k : (r+1)*k+k]
			d2 := down[(r+2)*k : (r+2)*k+k]
			d3 := down[(r+3)*k : (r+3)*k+k]
			c0, c1, c2, c3 := coef[r:r+4], coef[rank+r:rank+r+4], coef[2*rank+r:2*rank+r+4], coef[3*rank+r:3*rank+r+4]
			c00, c01, c02, c03 := c0[0], c0[1], c0[2], c0[3]
			c10, c11, c12, c13 := c1[0], c1[1], c1[2], c1[3]
			c20, c21, c22, c23 := c2[0], c2[1], c2[2], c2[3]
			c30, c31, c32, c33 := c3[0], c3[1], c3[2], c3[3]
			a1, a2, a3 = a1[:len(a0)], a2[:len(a0)], a3[:len(a0)]
			d0, d1, d2, d3 = d0[:len(a0)], d1[:len(a0)], d2[:len(a0)], d3[:len(a0)]
			for j := range a0 {
				x0, x1, x2, x3 := d0[j], d1[j], d2[j], d3[j]
				a0[j] += c00*x0 + c01*x1 + c02*x2 + c03*x3
				a1[j] += c10*x0 + c11*x1 + c12*x2 + c13*x3
				a2[j] += c20*x0 + c21*x1 + c22*x2 + c23*x3
				a3[j] += c30*x0 + c31*x1 + c32*x2 + c33*x3
			}
		}
	}
	// The rest: ranks past the last block of 4, or a short row block.
	for o := range nr {
		ao := acc[o*k : o*k+k]
		for q := r; q < rank; q++ {
			c := coef[o*rank+q]
			if c == 0 {
				continue
			}
			dq := down[q*k : q*k+k]
			dq = dq[:len(ao)]
			for j := range ao {
				ao[j] += c * dq[j]
			}
		}
	}
}

// Names lists the source's names when it can.
func (s *merged) Names() []string {
	if l, ok := s.src.(lister); ok {
		return l.Names()
	}
	return nil
}

// Info describes a tensor when the source can; merging keeps shapes and
// dtypes.
func (s *merged) Info(name string) (model.TensorInfo, bool) {
	if in, ok := s.src.(infoer); ok {
		return in.Info(name)
	}
	return model.TensorInfo{}, false
}

func toFloat32(d model.Data) ([]float32, error) {
	switch d.DType {
	case engine.F16:
		return safetensors.ToFloat32(safetensors.F16, d.Bytes)
	case engine.F32:
		return safetensors.ToFloat32(safetensors.F32, d.Bytes)
	}
	return nil, fmt.Errorf("weights of dtype %v cannot take a LoRA", d.DType)
}

// parallelFor runs job(0..n-1) on the machine's cores; each worker gets
// its own function from newWorker (for its scratch memory).
func parallelFor(n int, newWorker func() func(int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		f := newWorker()
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range workers {
		wg.Add(1)
		f := newWorker()
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	wg.Wait()
}
