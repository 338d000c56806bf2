"""Development kit for federation-operator: the sandbox (an in-memory Kubernetes API), local sites, the demo.

A distribution of its own (`federation-devkit`), so that it and its dependencies (kmock, cel-python)
stay out of the operator's image. It registers `federation-operator sandbox` and `demo` through the
entry-point group `federation_operator.commands`.
"""
