//! mempool
