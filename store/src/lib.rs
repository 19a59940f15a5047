//! stelgano-store (under construction).
