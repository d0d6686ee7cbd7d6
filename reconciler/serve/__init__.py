"""The running service: the loop of `hoody serve`, webhook intake, PR feedback,
notifications, metrics and logging."""
