demo: deps build
	@if [ -x scripts/demo.sh ]; then bash scripts/demo.sh; else \
		echo "make demo: the demo arrives with the networking issue (vm runtime and CNI are not built yet)" >&2; exit 1; fi
