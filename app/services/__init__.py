"""Service calls shared by the REST API, the web pages and the CLI."""
