#!/usr/bin/env bash
# e2e_group_survive_coop.sh: tests/e2e_group_survive.sh with the cooperative protocol
# (cooperative-sticky), and a changelog the broker creates on first use (4 partitions, fewer than
# the input's 12: input partitions share changelog partitions).
STRATEGY=cooperative-sticky exec bash "$(dirname "$0")/e2e_group_survive.sh"
