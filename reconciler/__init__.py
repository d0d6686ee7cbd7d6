"""hoody-reconciler: every branch and pull request of a git repository becomes a running
Docker environment, and its `.hoody/crontab` runs inside this service."""

__version__ = "0.1.0"
