# Shortcuts for the scripts in scripts/ (each installs what it needs).
.PHONY: test bench serve demo
test:
	./scripts/test
bench:
	./scripts/bench
serve:
	./scripts/serve
demo:
	./scripts/demo
