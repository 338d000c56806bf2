"""Session-wide test setup.

CPython 3.11.7 can fail with "AST constructor recursion depth mismatch" when pytest's assertion
rewriter parses a module in one thread while another thread (an operator or sandbox under test)
compiles code too. Importing the lazily loaded heavy modules here, before any test starts a
thread, keeps all of that parsing on the main thread.
"""

import hypothesis
import hypothesis.strategies  # noqa: F401
import kopf  # noqa: F401
import kubernetes.client  # noqa: F401

import federation_operator.adapters.k8s.client
import federation_operator.controller.runner  # noqa: F401
