#!/usr/bin/env bash
# Run on the GPU machine from the repository root, with .gl/ (GL loader
# debs) and .carry/gltest (go test -c -tags egl ./engine/gl) carried along.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
nvidia-smi -L
./.carry/gltest -test.run Conformance 2>&1 | tail -20
GLIMMER_GEMM_SIZE=4096 ./.carry/gltest -test.run '^$' -test.bench '^BenchmarkGEMM$' -test.benchtime 30x 2>&1 | grep Bench
./.carry/gltest -test.run '^$' -test.bench Ops -test.benchtime 20x 2>&1 | grep -E 'Bench|backend'
