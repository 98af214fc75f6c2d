"""Device drivers: small protocol libraries for scanners, cameras and lensmeters.

Importable on their own: nothing here imports `server` or `station`. Every device derives from
`device.Device` (reading thread, reconnect, events on the asyncio loop).
"""
