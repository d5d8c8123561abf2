package engine

import (
	"strings"
	"testing"
)

// TestCheckGroupNormShift: a shift must be F32 [R, C] with rows ShiftRow
// .. ShiftRow+N-1 inside it; anything else is a programmer error that
// names the shift and the rows it needs.
func TestCheckGroupNormShift(t *testing.T) {
	x := NewTensor(Shape{2, 4, 3, 3}, F32, nil) // [N, C, H, W]
	vec := NewTensor(Shape{4}, F32, nil)        // [C]
	for _, tc := range []struct {
		shift *Tensor
		row   int
		bad   bool
	}{
		{NewTensor(Shape{2, 4}, F32, nil), 0, false},
		{NewTensor(Shape{40, 4}, F32, nil), 38, false},
		{NewTensor(Shape{40, 4}, F32, nil), 39, true}, // one row past the end
		{NewTensor(Shape{40, 4}, F32, nil), -1, true},
		{NewTensor(Shape{2, 4}, F16, nil), 0, true},
		{NewTensor(Shape{2, 5}, F32, nil), 0, true},
		{NewTensor(Shape{8}, F32, nil), 0, true},
	} {
		msg := func() (msg string) {
			defer func() {
				if r := recover(); r != nil {
					msg, _ = r.(string)
				}
			}()
			CheckGroupNorm(x, x, vec, vec, GroupNormParams{Groups: 2, Eps: 1e-5, Shift: tc.shift, ShiftRow: tc.row})
			return ""
		}()
		if tc.bad != (msg != "") || tc.bad && !strings.Contains(msg, "shift") {
			t.Errorf("shift %v from row %d: panic %q, want one: %v", tc.shift, tc.row, msg, tc.bad)
		}
	}
}
