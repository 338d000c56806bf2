"""The only code that does I/O for the operator and the plugin: the Kubernetes API (`k8s/`), the
pinger (`probe`), the operator's Prometheus metrics listener (`metrics`).

Adapters call down into `domain`; the applications above (controller, server, plugin) call them.
"""
