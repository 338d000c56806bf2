"""Helpers shared by test modules, defined once (this package holds no tests).

A test module imports helpers from here, never from another test module:

- `server`: keys, identities and peer objects for the federation server, and a server in a thread
- `plugin`: two linked sites made with the demo's own steps, and the plugin run in-process
- `heartbeat`: a stand-in remote and a federation server thread for heartbeat tests
- `ingress`: client certificates and the upstream schemas the edge objects are validated against
"""
