"""Set-up: options parsed once, [tool.xsafety], registries, suites."""
