"""The batch engine: jobs from a manifest, a ledger of finished jobs, and executors that run them."""
