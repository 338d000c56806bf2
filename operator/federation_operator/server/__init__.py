"""The federation server: answers pings and forward-auth calls, enforcing pin + secret.

`index` and `clientcert` are pure (the decisions); `app`, `tls`, `watch` and `main` do the I/O.
"""
