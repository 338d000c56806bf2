"""Edge enforcement of certificate pinning: the trust bundle and the proxy objects built from it.

Pure: builds plain manifests and patches; the kopf handler that writes them lives in handlers/.
"""
