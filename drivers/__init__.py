"""Device drivers: small protocol libraries for scanners, cameras and lensmeters.

Importable on their own: nothing here imports `server` or `station`.
"""
