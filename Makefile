# Glimmer's two entry points (see README.md):
#   make run    build glimmer and open its window (ARGS="generate ..." runs a command)
#   make test   vet, every test (GL on Mesa llvmpipe), brief fuzzing, Windows cross-build
# Both install the system packages they need when missing (Debian/Ubuntu).

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
GO ?= go
# -tags egl: go-gl resolves GL entry points through EGL (headless contexts).
TAGS := egl
ARGS ?=

# Debian packages: EGL/GL headers and Mesa's software GL (llvmpipe) for the
# engine; X11/GL headers for Fyne's window (GLFW), GTK 3 for the native file
# dialogs (sqweek/dialog) and Xvfb for the real-window test; mingw-w64 for
# the Windows cross-build.
PACKAGES := pkg-config libegl-dev libgl-dev libgles-dev libegl-mesa0 libgl1-mesa-dri \
	libx11-dev libxcursor-dev libxrandr-dev libxinerama-dev libxi-dev libxxf86vm-dev \
	libgl1-mesa-dev libgtk-3-dev xvfb \
	gcc-mingw-w64-x86-64

# Fuzz targets run briefly by `make test`: package:Target.
FUZZ := engine/safetensors:FuzzHeader engine/ckpt:FuzzPickle engine/model:FuzzMapLDM engine/prompt:FuzzParse \
	engine/prompt:FuzzTokenize engine/tokenizer:FuzzEncode engine/tokenizer:FuzzBPE
# A count, not a duration: Go 1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" failure when a -fuzztime duration expires
# mid-run (golang/go#75804, fixed in Go 1.27); 300,000 inputs take 5-15 s
# per target on 2 cores.
FUZZTIME ?= 300000x

.PHONY: run test build deps gotool vet unit fuzz cross

run: build
	./glimmer $(ARGS)

build: deps gotool
	$(GO) build -tags $(TAGS) -o glimmer .

test: deps gotool vet unit fuzz cross

deps:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:" $$missing; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

# Go 1.24 or newer; with only an older Go at hand, the module proxy supplies
# the toolchain that go.mod asks for.
gotool:
	@command -v $(GO) >/dev/null || { \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q golang-go; }
	@$(GO) version

vet:
	$(GO) vet -tags $(TAGS) ./...

unit:
	$(GO) test -tags $(TAGS) -count=1 -timeout 30m ./...

fuzz:
	@set -e; for f in $(FUZZ); do \
		pkg=$${f%%:*}; target=$${f##*:}; \
		echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
		$(GO) test -tags $(TAGS) -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done

# The Windows build (WGL context, cgo through mingw-w64) must keep compiling.
cross:
	CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=x86_64-w64-mingw32-gcc $(GO) build ./...
