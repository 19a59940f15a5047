//! The `stelgano` command-line client (under construction).

fn main() {}
