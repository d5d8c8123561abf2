#!/usr/bin/env bash
# Full-size SD 1.5 (random weights, real shapes) on the GPU machine: writes
# the checkpoint to /tmp from the tensor-name table, then times 512x512,
# 20 steps, CFG 7.5 end to end. Carry .gl/ and .carry/ holding
# pipeline.test (go test -c -tags egl ./engine/pipeline),
# sd15_tensor_names.tsv and bpe_simple_vocab_16e6.txt.gz (from ../shared/refdata).
# GLIMMER_OFFLOAD=1 measures --offload; GLIMMER_GL_WINOGRAD=0 runs the 3x3
# convolutions as implicit GEMMs instead of by Winograd F(2x2, 3x3);
# GLIMMER_GL_WINO_F4=0 keeps every convolution on F(2x2, 3x3) (the default
# takes F(4x4, 3x3) for the U-Net's and the VAE decoder's, which inference
# marks Fast, from 128 tiles; 2 forces it on every one);
# GLIMMER_GL_ATTN=SHUF=0 runs attention without the driver's subgroup
# operations (p11's kernel; GLIMMER_GL_ATTN_40=... tunes one head dim,
# e.g. "PF=1" loads the next key tile during the current one, p18);
# GLIMMER_GL_FLUSH=4 calls glFlush after the 4th, 8th, 16th ... dispatch
# after each read-back, in case the GPU idles at a step's start until the
# driver submits (p18);
# GLIMMER_GL_BARRIERS=all puts a memory barrier after every dispatch
# (p12's way; by default only dependent dispatches get one, and the
# decoded image's hash, logged, must not change); GLIMMER_GL_CONVFOLD=0
# runs CFG's two images as separate GEMMs in the small-map convolutions
# and GLIMMER_GL_WINO_MINPX=0 sends the 8x8 latents' 3x3 convolutions
# back to Winograd (p12 on all three); GLIMMER_GL_WINO_OUTV=0 turns off
# the Winograd output transform's vector stores (on since p14);
# GLIMMER_GEMM_HALFMIN=0 keeps shallow products on 128x128 tiles instead
# of 128x64 of 128 threads (p14);
# GLIMMER_GL_PARK=0 makes --offload keep its weights in Go memory and
# upload them with glBufferSubData instead of parking them in pinned host
# memory that the GPU copies back itself (p15);
# GLIMMER_GL_DEFS="K4=0,N4=0" adds (here:
# overrides) #defines in every shader, e.g. to time the GEMMs' scalar
# loaders against their vec4 ones; GLIMMER_GL_PROFILE=1 adds the per-shader profile of the steps
# and of the decode (every dispatch fenced, which adds about 40 µs to
# each, so small passes read high); GLIMMER_GL_PROFILE=ts times every
# dispatch by GPU timestamps instead, unfenced (the steps read about 7%
# over their unprofiled time on the H100), and reports the gaps between
# dispatches apart (about 2.5 µs each on the H100 and the H200 alike: the
# queries' own cost, p16).
# To compare against an older build, carry its test binary too and run both
# in one call: timings from different machines do not compare.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export GLIMMER_SD15_TSV=.carry/sd15_tensor_names.tsv GLIMMER_SD15_VOCAB=.carry/bpe_simple_vocab_16e6.txt.gz GLIMMER_SD15_DIR=/tmp
./.carry/pipeline.test -test.run '^$' -test.bench SD15 -test.benchtime "${RUNS:-2}x" -test.v 2>&1 | grep -v '^=== '
