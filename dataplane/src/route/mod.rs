//! The forwarding table: longest-prefix match, effective priority and ECMP selection.
