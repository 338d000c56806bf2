"""The pure core: vocabulary, decisions and object builders. No I/O.

Nothing here imports kopf, aiohttp, the Kubernetes client, h11 or prometheus_client, nor any
other layer of the package (enforced by import-linter): time and randomness come in as arguments.
"""
