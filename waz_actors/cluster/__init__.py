"""Several daemons on one PostgreSQL, every instance owned by exactly one (issue 16).

lease_policy.py: the pure rules (renew, self-fence, fair share); leases.py: their SQL;
schema.py: the tables and the fencing check; node.py: the thread that runs the rounds and tells
the supervisor what to start and stop; status.py: the admin's view (cluster.status)."""
