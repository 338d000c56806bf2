"""`kubectl federation`: the plugin users run against a cluster (or the sandbox) from their kubeconfig.

`cli.py` only dispatches; each subcommand is one module here with `HELP`, `configure(parser)` and
`run(args) -> int`, registered in `cli.SUBCOMMANDS`.
"""
