//! Conduit control plane.
