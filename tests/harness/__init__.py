"""Helpers and fixtures shared by the test modules, each defined once (this package holds no tests).

A test module imports helpers from here, never from another test module or a conftest
(tests/unit/test_harness_layout.py checks it). Fixtures are in `fixtures`, which tests/conftest.py
registers as a plugin, so tests name them as arguments without importing them.

- `fixtures`: `site_factory`/`site`, `keys`, `helm`, `captured_logs`/`operator_logs`, `reliability_site`
- `site`: a sandbox API with its operator in this process, and the linking steps (issue, export, apply)
- `waiting`: poll-until-deadline helpers (`wait_for`, `async_wait_for`); tests never sleep
- `clock`: the clock a test controls, for time-dependent behaviour
- `recorder`: every version of the operator's objects a watch delivers during a test
- `net`: a free loopback port, for servers that must be told theirs
- `server`: keys, identities and peer objects for the federation server, and its app in a thread
- `heartbeat`: a stand-in remote that misbehaves on purpose, and a real federation server thread
- `plugin`: two linked local sites made with the demo's own steps, and the plugin run in-process
- `edge`, `ingress`: the edge a running site writes; client certificates and upstream schemas
- `chart`: the Helm chart rendered by a real helm
- `reliability`: counts, dead endpoints and leak scans of the reliability tier
- `kstatus`, `argocd_health`, `rbac`, `nginx_profile`: other sides written from their contracts
  (kstatus rules, Argo CD's Lua runtime, the RBAC authorizer, ingress-nginx's nginx directives);
  the federation endpoint written from docs/protocol.md is `federation_devkit.independent_remote`
  (hack/bench_scale.py runs it too)
- `sandbox_process`: the sandbox started as a user starts it, in its own process
- `skip_policy`: the pytest plugin CI uses to fail on a skip it does not allow
"""
