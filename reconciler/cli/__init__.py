"""The `hoody` command line."""
