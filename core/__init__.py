"""The shared core: rules that the server and the station both apply, written once.

It imports nothing of the project above it (checked by import-linter in `make test`).
"""
