"""The domain core: every operation the console, the API, the CLI and the worker perform."""
