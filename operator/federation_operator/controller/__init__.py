"""The operator: kopf registration, the handlers it calls, and the harness that runs it.

Inside, the layers go `threads` > `runner` > `registration` > `handlers` > `config`: `config` is the
leaf every part may import; the handlers never import what registers or runs them.
"""
