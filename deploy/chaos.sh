#!/usr/bin/env bash
echo "chaos: not built yet" >&2; exit 2
