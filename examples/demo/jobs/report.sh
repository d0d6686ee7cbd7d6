#!/bin/sh
# Counts heartbeats so far.
echo "heartbeats: $(wc -l < "${GREETING_FILE:-/data/heartbeat}" 2>/dev/null || echo 0)"
