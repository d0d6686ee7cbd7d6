"""The reconcile side: git mirrors, which refs and PR heads are desired (sources), the
apply algorithm against the runtime protocol, the per-repo controller and its work queue."""
