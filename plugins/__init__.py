"""septool's built-in source plugins, registered through the ``septool`` entry-point group."""
