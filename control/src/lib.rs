//! Conduit's control plane: configuration, and (as it grows) the forwarding-table builder,
//! health checks, failover and table publication.

pub mod config;
pub mod health;
pub mod heartbeat;
pub mod ipsec;
pub mod metrics;
pub mod operator;
pub mod plane;
pub mod prometheus;
pub mod tables;
