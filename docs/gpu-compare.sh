#!/usr/bin/env bash
# One GPU call that times this build against older ones and sweeps the
# head-dim-40 attention's grids: timings compare only within one call.
# Carry .gl/ and .carry/ holding gltest (go test -c -tags egl ./engine/gl),
# pipeline.test (this build's go test -c -tags egl ./engine/pipeline),
# older builds' as pipeline_<name>.test (git worktree add /tmp/wt REV, build
# there), sd15_tensor_names.tsv and bpe_simple_vocab_16e6.txt.gz (from
# ../shared/refdata). The full-size checkpoint is written to /tmp first.
# Prints each build's image, step and decode times, hash and peak memory,
# and each step's time in its last image;
# --offload's; GLIMMER_GL_FLUSH=0's (no flushes); then ms a call of self-attention at
# 4096 tokens, head dim 40, under each grid in ATTN40 (GLIMMER_GL_ATTN_40
# fields, "" for the default, which also runs last to show drift); then TestConformance, the attention variants,
# TestGEMMPlans and the sampler step's division on the driver; then GLIMMER_GL_PROFILE=ts's per-shader
# profile of one image (the whole of it in $OUT/profile.txt). CONFORMANCE
# narrows the tests run on the driver (a -test.run pattern). VARIANTS
# replaces the settings this build also runs under (';' between runs,
# ' ' between one run's VAR=value settings; default --offload, then
# GLIMMER_GL_FLUSH=0, the flushes off); OLD_VARIANTS gives settings the older
# builds also run under (same syntax, none by default); ATTN40=- and PROFILE=0 skip the sweep and the profile;
# SDGEMM=name,name times those BenchmarkSDGEMM shapes under the backend's
# own plan (or SDGEMM_PLANS's, GLIMMER_SDGEMM_PLANS's syntax) with each
# of SDGEMM_ENV's settings (';' between them);
# GEMM=4096 times BenchmarkGEMM's square products (NN, NT, TN) of that size;
# DRIVER_TESTS runs other packages' test binaries on the driver (below).
set -u
out=${OUT:-/tmp}
for f in .gl/*.deb; do dpkg -x "$f" / >/dev/null; done
ldconfig
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export GLIMMER_SD15_TSV=.carry/sd15_tensor_names.tsv GLIMMER_SD15_VOCAB=.carry/bpe_simple_vocab_16e6.txt.gz GLIMMER_SD15_DIR=/tmp
nvidia-smi -L
sd() { # binary, then VAR=value settings
	local bin=$1
	shift
	echo "== $bin $*"
	env "$@" timeout 150 "./.carry/$bin" -test.run '^$' -test.bench SD15 -test.benchtime "${RUNS:-2}x" -test.v 2>&1 |
		grep "ms/image\|hashes\|peak device\|step times\|FAIL\|panic"
}
sd pipeline.test
IFS=';' read -ra oldvariants <<<"${OLD_VARIANTS:-}"
for b in .carry/pipeline_*.test; do
	[ -e "$b" ] || continue
	sd "$(basename "$b")"
	for v in "${oldvariants[@]}"; do
		read -ra set <<<"$v"
		sd "$(basename "$b")" "${set[@]}"
	done
done
IFS=';' read -ra variants <<<"${VARIANTS:-GLIMMER_OFFLOAD=1;GLIMMER_GL_FLUSH=0}"
for v in "${variants[@]}"; do
	read -ra set <<<"$v"
	sd pipeline.test "${set[@]}"
done
if [ -n "${SDGEMM:-}" ]; then
	IFS=';' read -ra senv <<<"${SDGEMM_ENV:-}"
	for v in "${senv[@]:-}"; do
		read -ra set <<<"$v"
		echo "== SD GEMMs ${SDGEMM} ${v:-default}"
		env "${set[@]}" GLIMMER_SDGEMM="$SDGEMM" GLIMMER_SDGEMM_PLANS="${SDGEMM_PLANS:-auto}" timeout 300 ./.carry/gltest -test.run '^$' \
			-test.bench BenchmarkSDGEMM -test.benchtime 1x -test.v 2>&1 | grep -v "^=== \|^goos\|^goarch\|^pkg\|^cpu" | head -60
	done
fi
if [ -n "${GEMM:-}" ]; then
	echo "== GEMM ${GEMM}³"
	GLIMMER_GEMM_SIZE=$GEMM timeout 120 ./.carry/gltest -test.run '^$' -test.bench 'BenchmarkGEMM$' -test.benchtime 30x 2>&1 | grep "TFLOP\|FAIL\|panic"
fi
grids=()
[ "${ATTN40:-}" = - ] || IFS=';' read -ra grids <<<"${ATTN40:-;RX=4,RY=32,TQ=4,TK=8;RX=4,RY=32,TQ=4,TK=8,PF=1;RX=4,RY=64,TQ=2,TK=8,PF=1;RX=4,RY=32,TQ=4,TK=16,PF=1;RX=8,RY=32,TQ=4,TK=4,PF=1;RX=4,RY=16,TQ=8,TK=8,PF=1;RX=4,RY=32,TQ=4,TK=4,PF=1,PSH=1;RX=4,RY=16,TQ=4,TK=8,PF=1,PSH=1;RX=4,RY=32,TQ=2,TK=8,PF=1,PSH=1;RX=8,RY=16,TQ=4,TK=4,PF=1,PSH=1}"
[ ${#grids[@]} -eq 0 ] || for g in "${grids[@]}" ""; do
	echo "== attention, head dim 40: ${g:-default}"
	GLIMMER_GL_ATTN_40="$g" timeout 30 ./.carry/gltest -test.run '^$' -test.bench 'BenchmarkAttention/self_4096' \
		-test.benchtime 40x -test.v 2>&1 | grep -i "ms/call\|fail\|panic" | tail -2
done
echo "== conformance on the driver"
timeout 200 ./.carry/gltest -test.v -test.run "${CONFORMANCE:-TestConformance\$|TestConformanceAttentionVariants|TestGEMMPlans|TestSampleStepDivision}" 2>&1 |
	grep -v "^=== \|^    --- PASS\|^        --- PASS" | tail -25
# DRIVER_TESTS: other packages' tests to run on the driver, as
# binary:pattern pairs separated by spaces (go test -c -tags egl -o
# .carry/nn.test ./engine/nn, say, and "nn.test:TestOffload|TestPoolHome").
for dt in ${DRIVER_TESTS:-}; do
	echo "== ${dt%%:*} ${dt#*:} on the driver"
	timeout 200 "./.carry/${dt%%:*}" -test.v -test.run "${dt#*:}" 2>&1 | grep -v "^=== \|^    --- PASS" | tail -12
done
[ "${PROFILE:-1}" = 0 ] && exit 0
echo "== profile"
GLIMMER_GL_PROFILE=ts timeout 150 ./.carry/pipeline.test -test.run '^$' -test.bench SD15 -test.benchtime 1x -test.v >"$out/profile.txt" 2>&1
grep -v '^=== ' "$out/profile.txt" | head -60
