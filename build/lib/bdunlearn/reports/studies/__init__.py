"""One module per report: pure functions from run records (or measured rows) to the report's text and figures."""
