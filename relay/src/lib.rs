//! stelgano-relay (under construction).
