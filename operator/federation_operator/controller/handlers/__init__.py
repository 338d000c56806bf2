"""kopf glue: read what kopf hands over, call the domain modules, call I/O, set the patch."""
