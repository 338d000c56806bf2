"""The only code that talks to the Kubernetes API server (besides kopf itself)."""
