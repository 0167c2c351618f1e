#!/usr/bin/env bash
# Prints the EAL memory arguments for this machine: hugepages in memory-only mode when at least
# 256 MiB of free 2 MiB hugepages are mounted, otherwise --no-huge with 512 MiB of ordinary memory.
free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)
if [ "${free:-0}" -ge 128 ] && mountpoint -q /dev/hugepages 2>/dev/null; then
    echo "--in-memory"
else
    echo "--no-huge -m 512 --no-shconf"
fi
