//! lcore
