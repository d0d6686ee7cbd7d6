#!/bin/sh
# Appends a timestamp to the environment's volume: proof the schedule runs.
date -u +%Y-%m-%dT%H:%M:%SZ >> "${GREETING_FILE:-/data/heartbeat}"
tail -n 1 "${GREETING_FILE:-/data/heartbeat}"
