//! stelgano-bench (under construction).
