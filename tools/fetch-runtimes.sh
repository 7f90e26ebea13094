#!/usr/bin/env bash
# Placeholder until the runtimes issue lands: fetches the pinned native runtimes.
exit 0
