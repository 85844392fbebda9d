"""septool's command-line interface."""
