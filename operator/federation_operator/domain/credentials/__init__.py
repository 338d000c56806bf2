"""What to do about a FederationPeer's two shared secrets, decided purely from spec, status and Secrets.

The rules that matter most:
- A token is generated only when its Secret does not exist and status says none was ever
  generated, or when a user asked for it with the `federation.ampora.io/rotate` annotation.
  Restarts, repeated events and unrelated spec edits never regenerate; a vanished Secret is
  reported (`SecretMissing`), not silently replaced, because the remote holds the old token.
  A `<peer>-inbound` holds only hashes, which status publishes too: deleted, or holding other
  hashes than status (a namespace editor may rewrite a Secret, with the owner uid copied), it is
  written back from `status.inbound.acceptedHashes` and reported. Status is the source of truth
  because only the operator may write it (the status subresource).
- Every inbound source (generated, `secretHash`, `secretRef`) is mirrored as hashes into the one
  `<peer>-inbound` Secret, and published in `status.inbound.acceptedHashes`, which is what the
  federation server reads (it has no right on Secrets). Inbound plaintext is never stored
  there; it lives only in the short-lived handoff Secret until `kubectl federation export`
  consumes it or it expires.
- Writes are ordered handoff -> outbound -> inbound, and the handoff remembers which request
  (`initial` or the rotation nonce) its tokens belong to. A crash between writes is therefore
  resumed with the same tokens taken from the handoff instead of new ones that nobody could see.

Pure: no I/O. One idea per module: `credential_spec` (the spec's credential fields), `peer_secrets`
(the Secrets a peer owns and reads, observed), one module per stored layout (`inbound_hashes`,
`outbound_tokens`, `user_secrets`, `handoff_secret`), `rotation_request` (the rotate annotation),
`planning` (the decision) and `readiness` (the conditions it owns, its status patch, when to
look again).
"""
