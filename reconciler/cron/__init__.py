"""Schedules: the in-process scheduler, the sync of its tables from environments, job
execution in containers and the fair pool that runs them."""
