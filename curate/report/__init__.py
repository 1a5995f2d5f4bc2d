"""`curate report`: an HTML page with inline SVG charts, and a JSON sidecar with the same numbers, about a
dataset version or a loop/train run folder (docs/report.md). Entry point: `curate.report.build.write_report`."""
