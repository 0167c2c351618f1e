//! Zero-copy packet views over byte slices (no DPDK types): Ethernet, ARP, IPv4, IPv6, GRE,
//! ESP, TCP, UDP, ICMP, and the Internet checksum.
