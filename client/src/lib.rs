//! stelgano-client (under construction).
